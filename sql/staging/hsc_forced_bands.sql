-- hsc_forced_bands: one row per object and band with the per-band columns the quality rules read.
-- template: per-band. The warehouse renders this SELECT once per configured band, in band order
-- ({band} becomes g, r, i, z, y; {band_index} 0, 1, ...), and joins the copies with UNION ALL.
-- For per-band analysis (e.g. select band, median(cmodel_mag) ... group by band); the rules themselves
-- are computed row-wise in photometry_flags, which is faster on large tables.
-- contract: unique(object_id, band); not_null(object_id, band)
SELECT
    object_id,
    '{band}' AS band,
    {band_index} AS band_index,
    {band}_cmodel_mag AS cmodel_mag,
    {band}_cmodel_magsigma AS cmodel_magsigma,
    {band}_cmodel_flag AS cmodel_flag,
    {band}_pixelflags_edge AS pixelflags_edge,
    {band}_pixelflags_interpolatedcenter AS pixelflags_interpolatedcenter,
    {band}_pixelflags_saturatedcenter AS pixelflags_saturatedcenter,
    {band}_pixelflags_crcenter AS pixelflags_crcenter,
    {band}_pixelflags_bad AS pixelflags_bad,
    {band}_sdsscentroid_flag AS sdsscentroid_flag
FROM hsc_forced
