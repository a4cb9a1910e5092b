"""One FITS frame, read fast from any fsspec filesystem: probes, frames, cutouts and sums.

The public functions live in :mod:`intake_helio.fits.frame`; the other modules each hold
one concern of the reader: :mod:`~intake_helio.fits.source` (the bytes, fetched with
ranged or whole-file reads), :mod:`~intake_helio.fits.hdu` (the HDU walk and headers),
:mod:`~intake_helio.fits.tiles` (tile-compressed layouts, Rice/GZIP decoding) and
:mod:`~intake_helio.fits.pixels` (float32 conversion and exact sums).
"""

from __future__ import annotations

from .frame import (
    FrameInfo,
    as_frame_error,
    frame_error_reason,
    frame_sum,
    probe_frame,
    read_frame,
    read_header_values,
    start_whole_read,
)

__all__ = [
    "FrameInfo",
    "as_frame_error",
    "frame_error_reason",
    "frame_sum",
    "probe_frame",
    "read_frame",
    "read_header_values",
    "start_whole_read",
]
