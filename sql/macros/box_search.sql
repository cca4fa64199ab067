-- box_search: true where ra lies in [ra1, ra2] and dec in [dec1, dec2]; the archive's boxSearch.
-- When ra1 > ra2 the box crosses RA 0/360 (e.g. box_search(ra, dec, 359, 1, -1, 1)).
CREATE OR REPLACE MACRO box_search(ra, dec, ra1, ra2, dec1, dec2) AS (
    CASE
        WHEN ra1 <= ra2 THEN ra BETWEEN ra1 AND ra2
        ELSE ra >= ra1 OR ra <= ra2
    END
    AND dec BETWEEN dec1 AND dec2
)
