-- hsc_forced: object_id is unique.
SELECT object_id, count(*) AS n FROM hsc_forced GROUP BY object_id HAVING count(*) > 1
