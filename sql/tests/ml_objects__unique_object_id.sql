-- ml_objects: one row per object_id and per spec-z identifier.
SELECT 'object_id' AS key, object_id::VARCHAR AS value FROM ml_objects GROUP BY object_id HAVING count(*) > 1
UNION ALL
SELECT 'specz_name', specz_name FROM ml_objects GROUP BY specz_name HAVING count(*) > 1
