-- hsc_specz: (object_id, specz_name) is unique and not null.
SELECT object_id, specz_name, count(*) AS n FROM hsc_specz
GROUP BY object_id, specz_name HAVING count(*) > 1 OR object_id IS NULL OR specz_name IS NULL
