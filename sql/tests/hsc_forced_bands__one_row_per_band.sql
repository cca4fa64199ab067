-- hsc_forced_bands: every object has exactly one row per configured band.
SELECT object_id, count(*) AS n FROM hsc_forced_bands GROUP BY object_id
HAVING count(*) <> (SELECT count(*) FROM gwh_bands) OR count(DISTINCT band) <> count(*)
