-- angular_distance_arcsec: great-circle distance between two (ra, dec) positions in degrees, in arcsec.
-- The haversine form stays accurate at sub-arcsecond separations, where the cosine form does not.
CREATE OR REPLACE MACRO angular_distance_arcsec(ra1, dec1, ra2, dec2) AS
    degrees(2 * asin(sqrt(least(1.0,
        pow(sin(radians(dec2 - dec1) / 2), 2)
        + cos(radians(dec1)) * cos(radians(dec2)) * pow(sin(radians(ra2 - ra1) / 2), 2)
    )))) * 3600.0
