-- deduplicated: a row is kept exactly when it carries no duplicate rule.
SELECT * FROM deduplicated
WHERE kept = (duplicate_rule IS NOT NULL)
   OR (duplicate_rule IS NOT NULL AND duplicate_rule NOT IN ('same_specz_name', 'same_object_id'))
