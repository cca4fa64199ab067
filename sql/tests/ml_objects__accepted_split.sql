-- ml_objects: split takes only the three accepted values.
SELECT object_id, split FROM ml_objects WHERE split NOT IN ('train', 'validation', 'test')
