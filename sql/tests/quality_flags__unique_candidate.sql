-- quality_flags: one row per (object_id, specz_name), passes_all never null.
SELECT object_id, specz_name FROM quality_flags
GROUP BY object_id, specz_name HAVING count(*) > 1 OR bool_or(passes_all IS NULL)
