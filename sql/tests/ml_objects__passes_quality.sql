-- ml_objects: every object passes every quality rule with the spec-z entry it keeps.
SELECT ml_objects.object_id FROM ml_objects
LEFT JOIN quality_flags
    ON ml_objects.object_id = quality_flags.object_id
    AND ml_objects.specz_name = quality_flags.specz_name
WHERE quality_flags.passes_all IS DISTINCT FROM true
