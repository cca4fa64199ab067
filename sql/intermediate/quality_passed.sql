-- quality_passed: the candidates that pass every GalaxiesML quality rule.
-- contract: unique(object_id, specz_name)
SELECT object_id, specz_name
FROM quality_flags
WHERE passes_all
