-- split_unit: a number in [0, 1) fixed by (salt, key) alone: the first 8 bytes of MD5(salt || ':' || key) read
-- as a little-endian unsigned 64-bit integer (md5_number_upper), shifted right by 11, over 2^53.
-- MD5 is a published standard, so the same key and salt give the same number in any DuckDB
-- version, in Python (hashlib), and years from now; no random state, no row order.
CREATE OR REPLACE MACRO split_unit(salt, key) AS
    (md5_number_upper(salt || ':' || key) >> 11)::DOUBLE / 9007199254740992.0
