-- photometry_flags: per object, the GalaxiesML photometric rules, each true when it holds in every band.
-- A NULL flag counts as set (unknown is not clean). NaN and the -99 sentinel fail the magnitude
-- range (DuckDB orders NaN above every number, so NaN < 50 is false).
-- "Detected" means a finite cmodel magnitude and error in the band.
-- contract: unique(object_id); not_null(object_id)
WITH per_band AS (
    SELECT * FROM hsc_forced_bands
),

band_count AS (
    SELECT count(*) AS n_bands FROM gwh_bands
),

final AS (
    SELECT
        per_band.object_id,
        bool_and(coalesce(NOT per_band.cmodel_flag, false)) AS no_cmodel_flag,
        bool_and(coalesce(NOT per_band.pixelflags_edge, false)) AS no_pixelflags_edge,
        bool_and(coalesce(NOT per_band.pixelflags_interpolatedcenter, false))
            AS no_pixelflags_interpolatedcenter,
        bool_and(coalesce(NOT per_band.pixelflags_saturatedcenter, false))
            AS no_pixelflags_saturatedcenter,
        bool_and(coalesce(NOT per_band.pixelflags_crcenter, false)) AS no_pixelflags_crcenter,
        bool_and(coalesce(NOT per_band.pixelflags_bad, false)) AS no_pixelflags_bad,
        bool_and(coalesce(NOT per_band.sdsscentroid_flag, false)) AS no_sdsscentroid_flag,
        count(*) FILTER (
            WHERE isfinite(per_band.cmodel_mag) AND isfinite(per_band.cmodel_magsigma)
        ) = any_value(band_count.n_bands) AS detected_all_bands,
        bool_and(coalesce(per_band.cmodel_mag > 0 AND per_band.cmodel_mag < 50, false))
            AS cmodel_mag_in_range
    FROM per_band
    CROSS JOIN band_count
    GROUP BY per_band.object_id
)

SELECT * FROM final
