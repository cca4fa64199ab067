-- quality_passed: one row per (object_id, specz_name).
SELECT object_id, specz_name, count(*) AS n FROM quality_passed
GROUP BY object_id, specz_name HAVING count(*) > 1
