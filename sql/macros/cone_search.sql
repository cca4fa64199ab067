-- cone_search: true where (ra, dec) lies within radius_arcsec of (ra0, dec0); the archive's coneSearch.
-- Exact on the sphere: RA wraps at 0/360 and the poles need no special case.
CREATE OR REPLACE MACRO cone_search(ra, dec, ra0, dec0, radius_arcsec) AS
    angular_distance_arcsec(ra, dec, ra0, dec0) <= radius_arcsec
