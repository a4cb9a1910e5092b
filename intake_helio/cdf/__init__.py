"""The CDF room: the bytes of one CDF file as an ``xarray.Dataset`` along ``time``.

:data:`BACKEND` is its :class:`~intake_helio.base.backends.SeriesBackend` (the series layer
fetches the bytes; this room never fetches anything). Decoding is cdflib's
``cdf_to_xarray`` (ISTP conventions); the room adds the checks before it (magic number,
cut files, declared sizes against ``max_bytes``, bounded gzip), the choice of the
``DEPEND_0`` epoch along ``time`` and the per-file reasons.

Modules
-------
``backend``
    :class:`CdfBackend` and :data:`BACKEND`: scan and open, the temporary file, the bounds.
``istp``
    The epoch choice, the variables kept, :func:`layout_of` a series Dataset.
``records``
    The fields of a CDF's internal records checked before cdflib reads it.
"""

from __future__ import annotations

from .backend import BACKEND, CdfBackend, layout_of

__all__ = ["BACKEND", "CdfBackend", "layout_of"]
