-- split_summary: split takes only the three accepted values.
SELECT split FROM split_summary WHERE split IS NULL OR split NOT IN ('train', 'validation', 'test')
