"""The astropy private API that the FITS reader uses, in one place.

Besides this module, only :mod:`intake_helio.io.transport.bounded` (fsspec, s3fs and
aiobotocore, for bounded reads) touches another package's private names: when astropy
moves one, this is the file to fix. Each shim names the package and version it was
written against and what happens when the private API is gone (its fallback). Third-party
imports are made when a shim is first called, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["bintable_header_to_image_header"]


# --------------------------------------------------------------------------- astropy
@functools.cache
def _astropy_bintable_to_image() -> Callable[[fits.Header], fits.Header]:
    # astropy private API: astropy.io.fits.hdu.compressed.header._bintable_header_to_image_header
    # (CompImageHDU.header semantics; written against astropy 8.0.2). Fallback when astropy
    # moves or drops it: _bintable_header_to_image_header_fallback below, which keeps the
    # cards a frame reader needs (BITPIX, NAXISn, BLANK from ZBLANK, the user cards).
    try:
        from astropy.io.fits.hdu.compressed.header import _bintable_header_to_image_header
    except ImportError:  # pragma: no cover - only if astropy moves it
        return _bintable_header_to_image_header_fallback
    return _bintable_header_to_image_header


def bintable_header_to_image_header(bintable_header: fits.Header) -> fits.Header:
    """The uncompressed image header of a tile-compressed image's BINTABLE header.

    Parameters
    ----------
    bintable_header : astropy.io.fits.Header
        The raw header of the compressed HDU (``ZIMAGE = T``, ``ZBITPIX``, ``ZNAXISn`` ...).

    Returns
    -------
    astropy.io.fits.Header
        What astropy's ``CompImageHDU.header`` holds: ``XTENSION = 'IMAGE'``, ``BITPIX``,
        ``NAXISn``, ``BLANK`` ... instead of the table's cards.
    """
    return _astropy_bintable_to_image()(bintable_header)


def _bintable_header_to_image_header_fallback(bintable_header: fits.Header) -> fits.Header:
    from astropy.io import fits

    h = fits.Header()
    skip = re.compile(r"^(Z\w*|T(TYPE|FORM|UNIT|NULL|SCAL|ZERO|DISP|DIM)\d+|TFIELDS|THEAP)\Z")
    h["XTENSION"] = "IMAGE"
    h["BITPIX"] = bintable_header["ZBITPIX"]
    h["NAXIS"] = bintable_header["ZNAXIS"]
    for i in range(1, h["NAXIS"] + 1):
        h[f"NAXIS{i}"] = bintable_header[f"ZNAXIS{i}"]
    h["PCOUNT"], h["GCOUNT"] = 0, 1
    fixed = {"XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT"}
    for card in bintable_header.cards:
        key = card.keyword
        if key in fixed or key.startswith("NAXIS") or skip.match(key):
            continue
        h.append(card)
    if h["BITPIX"] > 0 and "BLANK" not in h and "ZBLANK" in bintable_header:
        h["BLANK"] = bintable_header["ZBLANK"]
    return h
