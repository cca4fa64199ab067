-- galaxiesml_pdr2: the GalaxiesML sample query, run on the HSC-SSP archive (release pdr2).
-- Run it with: gwh fetch hsc-sql --release pdr2 --sql-file sql/sources/galaxiesml_pdr2.sql
--                 --out galaxiesml_pdr2.fits --load hsc-forced
-- This is archive SQL (PostgreSQL), not a warehouse view: it is not in sql/order.txt.
--
-- One row per (object, matched spectrum): pdr2_wide.forced (positions, cmodel photometry, pixel
-- flags) joined to forced2 (sdsscentroid flags) and to specz. It selects every column the quality
-- views read (staging/hsc_forced_bands.sql and intermediate/quality_flags.sql) so that the
-- warehouse, not this query, applies and counts the pixel-flag rules and the deduplication.
-- WHERE holds the paper's documented catalogue cuts: a homogeneous (secure) spectrum,
-- 0.01 < z < 4, 0 < z_err < 1, z_err < 0.005 (1 + z), and 0 < cmodel_mag < 50 in g, r, i, z, y.
-- isprimary is selected, not required: the paper does not state it as a cut.
SELECT
    f1.object_id,
    f1.ra,
    f1."dec",
    f1.skymap_id,
    f1.isprimary,
    f1.g_cmodel_mag,
    f1.g_cmodel_magsigma,
    f1.r_cmodel_mag,
    f1.r_cmodel_magsigma,
    f1.i_cmodel_mag,
    f1.i_cmodel_magsigma,
    f1.z_cmodel_mag,
    f1.z_cmodel_magsigma,
    f1.y_cmodel_mag,
    f1.y_cmodel_magsigma,
    f1.g_cmodel_flag,
    f1.r_cmodel_flag,
    f1.i_cmodel_flag,
    f1.z_cmodel_flag,
    f1.y_cmodel_flag,
    f1.g_pixelflags_edge,
    f1.r_pixelflags_edge,
    f1.i_pixelflags_edge,
    f1.z_pixelflags_edge,
    f1.y_pixelflags_edge,
    f1.g_pixelflags_interpolatedcenter,
    f1.r_pixelflags_interpolatedcenter,
    f1.i_pixelflags_interpolatedcenter,
    f1.z_pixelflags_interpolatedcenter,
    f1.y_pixelflags_interpolatedcenter,
    f1.g_pixelflags_saturatedcenter,
    f1.r_pixelflags_saturatedcenter,
    f1.i_pixelflags_saturatedcenter,
    f1.z_pixelflags_saturatedcenter,
    f1.y_pixelflags_saturatedcenter,
    f1.g_pixelflags_crcenter,
    f1.r_pixelflags_crcenter,
    f1.i_pixelflags_crcenter,
    f1.z_pixelflags_crcenter,
    f1.y_pixelflags_crcenter,
    f1.g_pixelflags_bad,
    f1.r_pixelflags_bad,
    f1.i_pixelflags_bad,
    f1.z_pixelflags_bad,
    f1.y_pixelflags_bad,
    f2.g_sdsscentroid_flag,
    f2.r_sdsscentroid_flag,
    f2.i_sdsscentroid_flag,
    f2.z_sdsscentroid_flag,
    f2.y_sdsscentroid_flag,
    sz.specz_name,
    sz.specz_ra,
    sz.specz_dec,
    sz.specz_redshift,
    sz.specz_redshift_err,
    sz.specz_flag_homogeneous,
    sz.specz_mag_i
FROM pdr2_wide.forced AS f1
INNER JOIN pdr2_wide.forced2 AS f2 ON f2.object_id = f1.object_id
INNER JOIN pdr2_wide.specz AS sz ON sz.object_id = f1.object_id
WHERE sz.specz_flag_homogeneous
    AND sz.specz_redshift > 0.01
    AND sz.specz_redshift < 4
    AND sz.specz_redshift_err > 0
    AND sz.specz_redshift_err < 1
    AND sz.specz_redshift_err < 0.005 * (1 + sz.specz_redshift)
    AND f1.g_cmodel_mag > 0 AND f1.g_cmodel_mag < 50
    AND f1.r_cmodel_mag > 0 AND f1.r_cmodel_mag < 50
    AND f1.i_cmodel_mag > 0 AND f1.i_cmodel_mag < 50
    AND f1.z_cmodel_mag > 0 AND f1.z_cmodel_mag < 50
    AND f1.y_cmodel_mag > 0 AND f1.y_cmodel_mag < 50
