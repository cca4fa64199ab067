-- split_summary: one row per split.
SELECT split, count(*) AS n FROM split_summary GROUP BY split HAVING count(*) > 1
