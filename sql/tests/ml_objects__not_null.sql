-- ml_objects: the key, the split and the label are never null.
SELECT object_id FROM ml_objects
WHERE object_id IS NULL OR split IS NULL OR specz_redshift IS NULL OR _healpix_29 IS NULL
