-- split_summary: objects per split with the fraction each holds and the redshift range it spans.
-- contract: unique(split); accepted(split: train, validation, test)
SELECT
    split,
    count(*) AS n_objects,
    round(count(*) / sum(count(*)) OVER (), 4) AS fraction,
    min(specz_redshift) AS min_redshift,
    median(specz_redshift) AS median_redshift,
    max(specz_redshift) AS max_redshift
FROM ml_objects
GROUP BY split
ORDER BY CASE split WHEN 'train' THEN 0 WHEN 'validation' THEN 1 ELSE 2 END
