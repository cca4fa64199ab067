"""Cutout images: HSC bands and filters (bands), cutout FITS files (fits), mask planes (masks),
crop/pad to a common size (fit) and PNG previews (preview)."""
