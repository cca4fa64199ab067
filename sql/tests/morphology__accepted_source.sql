-- morphology: every row says where it came from: 'measured' or 'loaded:<file name>'.
SELECT object_id, morphology_source FROM morphology
WHERE morphology_source IS NULL
   OR NOT (morphology_source = 'measured' OR morphology_source LIKE 'loaded:%')
