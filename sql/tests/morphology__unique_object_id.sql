-- morphology: object_id is unique (measured and loaded rows share one row per object).
SELECT object_id, count(*) AS n FROM morphology GROUP BY object_id HAVING count(*) > 1
