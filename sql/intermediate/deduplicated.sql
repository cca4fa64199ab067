-- deduplicated: every quality-passed candidate with its duplicate ranks; kept marks one per source.
-- The paper's two rules, applied in this order:
--   1. candidates sharing a spec-z identifier (specz_name) are one source: keep the closest match
--      (smallest distance between the spec-z and photometric positions), then the smallest
--      specz_redshift_err, then the smallest object_id;
--   2. an object_id left with several spec-z entries is one object: keep the smallest
--      specz_redshift_err, then the closest match, then the smallest specz_name.
-- The tie-break ends on unique keys, so the result never depends on row order.
-- contract: unique(object_id, specz_name); accepted(duplicate_rule: same_specz_name, same_object_id)
WITH candidates AS (
    SELECT
        quality_passed.object_id,
        quality_passed.specz_name,
        hsc_specz.specz_redshift_err,
        angular_distance_arcsec(
            hsc_forced.ra, hsc_forced.dec, hsc_specz.specz_ra, hsc_specz.specz_dec
        ) AS match_distance_arcsec
    FROM quality_passed
    INNER JOIN hsc_specz
        ON quality_passed.object_id = hsc_specz.object_id
        AND quality_passed.specz_name = hsc_specz.specz_name
    INNER JOIN hsc_forced ON quality_passed.object_id = hsc_forced.object_id
),

by_specz AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY specz_name
            ORDER BY match_distance_arcsec, specz_redshift_err, object_id
        ) AS rank_in_specz_name
    FROM candidates
),

by_object AS (
    SELECT
        object_id,
        specz_name,
        row_number() OVER (
            PARTITION BY object_id
            ORDER BY specz_redshift_err, match_distance_arcsec, specz_name
        ) AS rank_in_object_id
    FROM by_specz
    WHERE rank_in_specz_name = 1
),

final AS (
    SELECT
        by_specz.object_id,
        by_specz.specz_name,
        by_specz.specz_redshift_err,
        by_specz.match_distance_arcsec,
        by_specz.rank_in_specz_name,
        by_object.rank_in_object_id,
        coalesce(by_object.rank_in_object_id = 1, false) AS kept,
        CASE
            WHEN by_specz.rank_in_specz_name > 1 THEN 'same_specz_name'
            WHEN by_object.rank_in_object_id > 1 THEN 'same_object_id'
        END AS duplicate_rule
    FROM by_specz
    LEFT JOIN by_object
        ON by_specz.object_id = by_object.object_id
        AND by_specz.specz_name = by_object.specz_name
)

SELECT * FROM final
