-- photometry_flags: per object, the GalaxiesML photometric rules, each true when it holds in every band.
-- {{all_bands: EXPR}} expands to (EXPR for g AND EXPR for r AND ...) over the configured bands.
-- A NULL flag counts as set (unknown is not clean). NaN and the -99 sentinel fail the magnitude
-- range (DuckDB orders NaN above every number, so NaN < 50 is false).
-- "Detected" means a finite cmodel magnitude and error in the band.
-- Row-wise on purpose: one pass over hsc_forced, no per-band unpivot or grouping.
-- contract: unique(object_id); not_null(object_id)
WITH final AS (
    SELECT
        object_id,
        {{all_bands: coalesce(NOT {band}_cmodel_flag, false)}} AS no_cmodel_flag,
        {{all_bands: coalesce(NOT {band}_pixelflags_edge, false)}} AS no_pixelflags_edge,
        {{all_bands: coalesce(NOT {band}_pixelflags_interpolatedcenter, false)}}
            AS no_pixelflags_interpolatedcenter,
        {{all_bands: coalesce(NOT {band}_pixelflags_saturatedcenter, false)}}
            AS no_pixelflags_saturatedcenter,
        {{all_bands: coalesce(NOT {band}_pixelflags_crcenter, false)}} AS no_pixelflags_crcenter,
        {{all_bands: coalesce(NOT {band}_pixelflags_bad, false)}} AS no_pixelflags_bad,
        {{all_bands: coalesce(NOT {band}_sdsscentroid_flag, false)}} AS no_sdsscentroid_flag,
        {{all_bands: coalesce(isfinite({band}_cmodel_mag) AND isfinite({band}_cmodel_magsigma), false)}}
            AS detected_all_bands,
        {{all_bands: coalesce({band}_cmodel_mag > 0 AND {band}_cmodel_mag < 50, false)}}
            AS cmodel_mag_in_range
    FROM hsc_forced
)

SELECT * FROM final
