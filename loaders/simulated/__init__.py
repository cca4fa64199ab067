"""SIMULATED inputs, never real data: an HSC-like catalog (:mod:`.catalog`), 5-band images with
real HSC PSFs and noise (:mod:`.images`), and ``gwh demo`` built from them (:mod:`.demo`)."""
