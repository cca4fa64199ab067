-- ml_objects: the clean, deduplicated sample, one row per object, every forced and spec-z column, and its split.
-- split is a pure function of (salt, key): key = object_id in "object" mode, or the object's
-- HEALPix cell at [splits] healpix_order in "healpix" mode (sky neighbours share a split).
-- Fractions and salt come from warehouse.toml through gwh_settings. Adding rows never moves an
-- object to another split; changing the salt or fractions does.
-- Morphology (GalaxiesML Table 1 per band, measured by `gwh morphology measure` or loaded by
-- `gwh load morphology`) is LEFT JOINed by object_id: NULL where an object has none, and every
-- morphology column NULL (morphology_source too) while the table was never filled.
-- contract: unique(object_id); unique(specz_name); not_null(object_id, split, specz_redshift);
--           accepted(split: train, validation, test)
WITH settings AS (
    SELECT * FROM gwh_settings
),

morph AS (
    SELECT * EXCLUDE (ra, dec, _healpix_29) FROM morphology
),

kept AS (
    SELECT object_id, specz_name, match_distance_arcsec
    FROM deduplicated
    WHERE kept
),

joined AS (
    SELECT
        hsc_forced.*,
        hsc_specz.* EXCLUDE (object_id, _healpix_29),
        kept.match_distance_arcsec AS specz_match_distance_arcsec,
        morph.* EXCLUDE (object_id)
    FROM kept
    INNER JOIN hsc_forced ON kept.object_id = hsc_forced.object_id
    INNER JOIN hsc_specz
        ON kept.object_id = hsc_specz.object_id
        AND kept.specz_name = hsc_specz.specz_name
    LEFT JOIN morph ON kept.object_id = morph.object_id
),

keyed AS (
    SELECT
        joined.*,
        split_unit(
            settings.salt,
            CASE settings.mode
                WHEN 'healpix' THEN 'healpix' || settings.healpix_order || ':'
                    || (joined._healpix_29 >> (2 * (29 - settings.healpix_order)))::VARCHAR
                ELSE 'object:' || joined.object_id::VARCHAR
            END
        ) AS split_u,
        settings.train_fraction,
        settings.validation_fraction
    FROM joined
    CROSS JOIN settings
),

final AS (
    SELECT
        CASE
            WHEN split_u < train_fraction THEN 'train'
            WHEN split_u < train_fraction + validation_fraction THEN 'validation'
            ELSE 'test'
        END AS split,
        * EXCLUDE (split_u, train_fraction, validation_fraction)
    FROM keyed
)

SELECT * FROM final
