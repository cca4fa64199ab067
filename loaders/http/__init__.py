"""HTTP shared by the archive clients: one session with retries, timeouts, caching and the
archives' error pages turned into :class:`~warehouse.errors.ArchiveError` (``session``), and
astroquery's requests routed through it (``astroquery``)."""
