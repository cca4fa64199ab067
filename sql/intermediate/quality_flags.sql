-- quality_flags: one row per candidate (an object with one spec-z entry), one boolean column per GalaxiesML rule.
-- Count what each cut removes: select count(*) filter (where not redshift_in_range) from quality_flags
-- Photometric rules come from photometry_flags; spec-z rules (GalaxiesML, Table/Section 2):
-- secure homogeneous flag, 0 < err < 1, z below the 9.9999 sentinel, 0.01 < z < 4, err < 0.005 (1 + z).
-- contract: unique(object_id, specz_name); not_null(object_id, specz_name, passes_all)
WITH specz AS (
    SELECT
        object_id,
        specz_name,
        specz_redshift,
        specz_redshift_err,
        specz_flag_homogeneous
    FROM hsc_specz
),

rules AS (
    SELECT
        specz.object_id,
        specz.specz_name,
        photometry_flags.no_cmodel_flag,
        photometry_flags.no_pixelflags_edge,
        photometry_flags.no_pixelflags_interpolatedcenter,
        photometry_flags.no_pixelflags_saturatedcenter,
        photometry_flags.no_pixelflags_crcenter,
        photometry_flags.no_pixelflags_bad,
        photometry_flags.no_sdsscentroid_flag,
        photometry_flags.detected_all_bands,
        photometry_flags.cmodel_mag_in_range,
        coalesce(specz.specz_flag_homogeneous, false) AS specz_secure,
        coalesce(specz.specz_redshift_err > 0 AND specz.specz_redshift_err < 1, false)
            AS specz_err_in_range,
        coalesce(specz.specz_redshift < 9.999, false) AS specz_not_sentinel,
        coalesce(specz.specz_redshift > 0.01 AND specz.specz_redshift < 4, false)
            AS redshift_in_range,
        coalesce(specz.specz_redshift_err < 0.005 * (1 + specz.specz_redshift), false)
            AS specz_err_relative
    FROM specz
    INNER JOIN photometry_flags ON specz.object_id = photometry_flags.object_id
),

final AS (
    SELECT
        *,
        no_cmodel_flag
        AND no_pixelflags_edge
        AND no_pixelflags_interpolatedcenter
        AND no_pixelflags_saturatedcenter
        AND no_pixelflags_crcenter
        AND no_pixelflags_bad
        AND no_sdsscentroid_flag
        AND detected_all_bands
        AND cmodel_mag_in_range
        AND specz_secure
        AND specz_err_in_range
        AND specz_not_sentinel
        AND redshift_in_range
        AND specz_err_relative AS passes_all
    FROM rules
)

SELECT * FROM final
