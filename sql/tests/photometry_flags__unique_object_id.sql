-- photometry_flags: object_id is unique and never null.
SELECT object_id, count(*) AS n FROM photometry_flags
GROUP BY object_id HAVING count(*) > 1 OR object_id IS NULL
