"""Synthetic SDO/AIA level-1-like frames (94 Å and other EUV channels) and a flare.

:func:`make_aia_frame` draws one AIA-like frame: a limb-darkened solar disk
(``I(mu) = 1 - u (1 - mu)``, ``u = 0.5``) with a faint corona falling off above the limb, a
few static active regions and one *flaring* active region at a fixed heliographic position
(Stonyhurst longitude -30°, latitude +18°, projected with the date's B0 angle), Poisson
(photon) noise plus Gaussian read noise, stored like AIA level 1 (int16, ``BLANK = -32768``,
RICE_1 tile compression with one row per tile, in extension 1). The channel (``wavelength``:
94, 131, 171, 193, 211, 304 or 335 Å) sets ``WAVELNTH``, ``WAVE_STR``, ``INSTRUME``, the
brightness of the Sun and the nominal exposure time.

:func:`flare_profile` gives the brightness factor of the flaring active region over time
(the quiet Sun and the corona do not change); :func:`aec_exptime` the exposure that AIA's
automatic exposure control would pick for it (shorter during the flare, in discrete steps).
Pixels are counts, ``DN = rate * EXPTIME``: light curves in DN/s are smooth, in DN they dip
when the exposure shortens. :func:`frame_boxes` names three pixel boxes (``flare`` on the
flaring region, ``quiet`` on quiet Sun, ``corner`` off the limb) and :func:`solar_b0` the B0
angle written as ``HGLT_OBS``. :func:`frame_bytes` gives the bytes of a FITS file;
:func:`render_frame` and :func:`reheader_frame` are the fast paths
:mod:`intake_helio.testing.demo_data` uses to write runs of frames.

The data are synthetic: every header carries ``ORIGIN`` and a ``COMMENT`` saying so.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits

from ..base.times import parse_time
from .errors import DemoDataError

__all__ = [
    "BLANK",
    "REF_EXPTIME",
    "WAVELENGTHS",
    "Box",
    "aec_exptime",
    "flare_amplitude",
    "flare_profile",
    "frame_boxes",
    "frame_bytes",
    "make_aia_frame",
    "nominal_exptime",
    "reheader_frame",
    "render_frame",
    "solar_b0",
]

from .sun import (  # the scene; the public names are re-exported here
    _READ_NOISE_DN,
    _TELESCOPES,
    BLANK,
    REF_EXPTIME,
    WAVELENGTHS,
    Box,
    _channel,
    _check_frame_args,
    _geometry,
    _iso_z,
    _scene,
    _scene_b0,
    _scene_r_sun,
    _seed_words,
    aec_exptime,
    flare_amplitude,
    flare_profile,
    frame_boxes,
    nominal_exptime,
    solar_b0,
)


def _frame_pixels(
    t: pd.Timestamp,
    size: int,
    seed: int,
    intensity: float,
    exptime: float,
    blank_fraction: float,
    wavelength: int = 94,
) -> np.ndarray:
    """The int16 pixels of one frame (BLANK where missing); deterministic from seed and time.

    Expected counts: the static scene times ``exptime / REF_EXPTIME`` times the channel's
    brightness, with the flaring region times ``intensity``.
    """
    geo = _geometry(t, size)
    base, ar_patch, (i0, i1, j0, j1) = _scene(size, int(seed), _scene_r_sun(geo), _scene_b0(geo))
    scale = exptime / REF_EXPTIME * _channel(wavelength)[2]
    lam = base * np.float32(scale)
    if intensity != 1.0:
        lam[i0:i1, j0:j1] += ar_patch * np.float32((intensity - 1.0) * scale)
        np.maximum(lam, np.float32(0.0), out=lam)

    # Photon noise (Poisson, in DN) plus Gaussian read noise, then int16 like level 1.
    rng = np.random.default_rng(_seed_words(seed, t))
    counts = rng.poisson(lam).astype(np.float32)
    del lam
    noise = rng.standard_normal(counts.shape, dtype=np.float32)
    noise *= np.float32(_READ_NOISE_DN)
    counts += noise
    del noise
    np.rint(counts, out=counts)
    np.clip(counts, BLANK + 1, 32767, out=counts)
    pixels = counts.astype(np.int16)
    del counts
    n_blank = round(blank_fraction * size * size)
    if n_blank:
        flat = pixels.reshape(-1)
        flat[rng.choice(flat.size, size=n_blank, replace=False)] = BLANK
    return pixels


def _good_stats(pixels: np.ndarray) -> tuple[float, int, int, int]:
    """(mean, min, max, n_blank) of the non-BLANK pixels, as float64/int."""
    good = pixels != BLANK
    n_good = int(np.count_nonzero(good))
    if n_good == 0:
        return float("nan"), 0, 0, int(pixels.size)
    vals = pixels[good]
    mean = float(np.sum(vals, dtype=np.int64)) / n_good  # exact sum of integers
    return mean, int(vals.min()), int(vals.max()), int(pixels.size - n_good)


def _frame_header(
    t: pd.Timestamp,
    size: int,
    exptime: float,
    stats: tuple[float, int, int, int],
    wavelength: int = 94,
) -> fits.Header:
    geo = _geometry(t, size)
    instrume, wave_str, _, _ = _channel(wavelength)
    mean, vmin, vmax, n_blank = stats
    t_obs = t + pd.Timedelta(exptime / 2.0, "s")
    cards = [
        ("ORIGIN", "intake-helio demo", "synthetic data, not an observation"),
        ("TELESCOP", "SDO/AIA", "Solar Dynamics Observatory / AIA"),
        ("INSTRUME", instrume, _TELESCOPES[instrume]),
        ("DETECTOR", "AIA", None),
        ("WAVELNTH", int(wavelength), "[angstrom] wavelength"),
        ("WAVEUNIT", "angstrom", None),
        ("WAVE_STR", wave_str, None),
        ("IMG_TYPE", "LIGHT", None),
        ("LVL_NUM", 1.0, "data level"),
        ("QUALITY", 0, "quality flags (0 = good)"),
        ("DATE-OBS", _iso_z(t), "start of exposure (UTC)"),
        ("T_OBS", _iso_z(t_obs), "mid-exposure (UTC)"),
        ("EXPTIME", float(exptime), "[s] exposure time"),
        ("DN_GAIN", 18.3, "[electron/DN] camera gain"),
        ("BUNIT", "DN", None),
        ("CTYPE1", "HPLN-TAN", None),
        ("CTYPE2", "HPLT-TAN", None),
        ("CUNIT1", "arcsec", None),
        ("CUNIT2", "arcsec", None),
        ("CRPIX1", geo["crpix"], "[pixel] Sun centre"),
        ("CRPIX2", geo["crpix"], "[pixel] Sun centre"),
        ("CRVAL1", 0.0, "[arcsec]"),
        ("CRVAL2", 0.0, "[arcsec]"),
        ("CDELT1", geo["cdelt"], "[arcsec/pixel]"),
        ("CDELT2", geo["cdelt"], "[arcsec/pixel]"),
        ("CROTA2", 0.0, "[deg]"),
        ("RSUN_OBS", round(geo["rsun_obs"], 4), "[arcsec] apparent solar radius"),
        ("R_SUN", round(geo["r_sun"], 4), "[pixel] apparent solar radius"),
        ("DSUN_OBS", round(geo["dsun_m"], 1), "[m] distance to Sun centre"),
        ("HGLN_OBS", 0.0, "[deg] Stonyhurst longitude of the observer"),
        ("HGLT_OBS", round(geo["b0"], 4), "[deg] Stonyhurst latitude of the observer (B0)"),
        ("RSUN_REF", 696000000.0, "[m] reference radius of the Sun"),
        ("DATAMIN", vmin, "minimum of good pixels"),
        ("DATAMAX", vmax, "maximum of good pixels"),
        ("DATAMEAN", mean, "mean of good pixels"),
        ("MISSVALS", n_blank, "number of BLANK pixels"),
        ("BLANK", BLANK, "missing pixel value"),
    ]
    header = fits.Header()
    for key, value, comment in cards:
        header[key] = (value, comment) if comment else value
    header["COMMENT"] = (
        f"Synthetic AIA-{int(wavelength)}-like frame written by intake_helio.testing.aia."
    )
    return header


def _hdulist(pixels: np.ndarray, header: fits.Header) -> fits.HDUList:
    size = pixels.shape[1]
    ext = fits.CompImageHDU(
        data=pixels, header=header, compression_type="RICE_1", tile_shape=(1, size)
    )
    return fits.HDUList([fits.PrimaryHDU(), ext])


def make_aia_frame(
    time: Any,
    size: int = 256,
    seed: int = 0,
    intensity: float = 1.0,
    exptime: float | None = None,
    blank_fraction: float = 0.001,
    wavelength: int = 94,
) -> fits.HDUList:
    """Make one synthetic AIA level-1-like frame (94 Å unless ``wavelength`` says otherwise).

    The image is a limb-darkened disk (radius ``RSUN_OBS / CDELT``, about 0.4 * ``size``) with a
    power-law corona outside the limb, 3–5 static active regions (their layout depends on
    ``seed`` only) and the flaring active region (12 times the disk centre before the flare,
    at Stonyhurst longitude -30°, latitude +18°, seen with the B0 angle of ``time``), Poisson
    noise in DN plus 1.2 DN Gaussian read noise, rounded to int16; a random ``blank_fraction``
    of the pixels is set to ``BLANK = -32768``. Counts are a rate times the exposure,
    ``exptime / 2.9``; the quiet-Sun disk centre is ~520 DN at 2.9 s, which makes a 4096² file
    ~14 MB (2.4x compression, like the live AIA 94 Å files). :func:`frame_boxes` gives boxes
    on the flaring region, on quiet Sun and off the limb.

    Parameters
    ----------
    time : time
        Start of the exposure (``DATE-OBS``); naive times are UTC.
    size : int
        Pixels per side (4096 for a full-size frame; 256 is quick).
    seed : int
        Non-negative seed; the noise depends on ``seed`` and ``time``, the active regions on
        ``seed``.
    intensity : float
        Brightness factor of the flaring active region only (e.g. :func:`flare_profile`;
        1 = before the flare); the quiet Sun, the corona and the other regions do not change.
    exptime : float, optional
        Exposure time in seconds (``EXPTIME``); default :func:`aec_exptime` of ``wavelength``
        and ``intensity`` (2.9 s at 94 Å before the flare, 0.87 s at a factor 4).
    blank_fraction : float
        Fraction of pixels set to ``BLANK``.
    wavelength : int
        AIA EUV channel in Å (:data:`WAVELENGTHS`): sets ``WAVELNTH``, ``WAVE_STR`` and
        ``INSTRUME``, and scales the whole image by the channel's brightness (1 at 94 Å,
        1.8 at 171 Å, in DN/s); the shape of disk, corona and active regions is the same.

    Returns
    -------
    astropy.io.fits.HDUList
        An empty ``PrimaryHDU`` and, in extension 1, a ``CompImageHDU`` (RICE_1, int16, one row
        per tile) whose header has ``BLANK``, so astropy reads float32 with NaN there.

    Raises
    ------
    DemoDataError
        (a ``ValueError``) An argument is out of range.
    TimeRangeError
        ``time`` cannot be parsed.
    """
    t = parse_time(time, "time")
    intensity, blank_fraction = float(intensity), float(blank_fraction)
    _check_frame_args(size, seed, intensity, 1.0, blank_fraction)
    _channel(wavelength)
    wav = int(wavelength)
    exptime = aec_exptime(wav, intensity) if exptime is None else float(exptime)
    _check_frame_args(size, seed, intensity, exptime, blank_fraction)
    pixels = _frame_pixels(t, int(size), int(seed), intensity, exptime, blank_fraction, wav)
    header = _frame_header(t, int(size), exptime, _good_stats(pixels), wav)
    return _hdulist(pixels, header)


def frame_bytes(hdul: fits.HDUList) -> bytes:
    """Serialise an ``HDUList`` to the bytes of a FITS file (compressing any compressed HDU).

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList

    Returns
    -------
    bytes
        The whole file; its length is a multiple of 2880.
    """
    buf = io.BytesIO()
    hdul.writeto(buf, output_verify="exception")
    return buf.getvalue()


def render_frame(
    time: pd.Timestamp,
    size: int,
    seed: int,
    intensity: float,
    exptime: float,
    blank_fraction: float,
    wavelength: int = 94,
    boxes: Sequence[Box] = (),
) -> tuple[bytes, float, tuple[float, ...]]:
    """The FITS file of :func:`make_aia_frame` as bytes, and the exact means of its good pixels.

    The fast path for writing many frames: no argument checks (use :func:`make_aia_frame`
    for checked arguments) and no ``HDUList`` kept.

    Parameters
    ----------
    time : pandas.Timestamp
        Naive UTC start of the exposure.
    size, seed, intensity, exptime, blank_fraction, wavelength
        As for :func:`make_aia_frame`, already checked (``exptime`` given).
    boxes : sequence of Box
        Boxes whose means to return too (e.g. the values of :func:`frame_boxes`).

    Returns
    -------
    (bytes, float, tuple of float)
        The file, the float64 mean of its non-``BLANK`` pixels (what astropy's float32 image
        averages to, NaN excluded) and that mean in each box, in DN.
    """
    pixels = _frame_pixels(time, size, seed, intensity, exptime, blank_fraction, wavelength)
    stats = _good_stats(pixels)
    header = _frame_header(time, size, exptime, stats, wavelength)
    box_means = tuple(box.mean(pixels) for box in boxes)
    return frame_bytes(_hdulist(pixels, header)), stats[0], box_means


def reheader_frame(raw: bytes, time: pd.Timestamp, size: int, exptime: float) -> bytes:
    """Return ``raw`` with the time-dependent header cards of extension 1 set for ``time``.

    The compressed tiles are copied unchanged: pixels are identical, only the header differs
    (``DATE-OBS``, ``T_OBS``, ``EXPTIME``, ``RSUN_OBS``, ``R_SUN``, ``DSUN_OBS``,
    ``HGLT_OBS``). Pixels are not rescaled: give the ``exptime`` of the pixels' frame.

    Parameters
    ----------
    raw : bytes
        A file made by :func:`render_frame` (or :func:`frame_bytes` of :func:`make_aia_frame`).
    time : pandas.Timestamp
        Naive UTC start of the new exposure.
    size : int
        Pixels per side of ``raw``.
    exptime : float
        The new exposure time in seconds.

    Returns
    -------
    bytes
        A file of the same length.

    Raises
    ------
    DemoDataError
        The new header would not fit in the old one's blocks (not a file of this module).
    """
    with fits.open(io.BytesIO(raw), disable_image_compression=True) as hdul:
        info = hdul.fileinfo(1)
        header = hdul[1].header.copy()
        fresh = _frame_header(time, size, exptime, (0.0, 0, 0, 0))
        for key in ("DATE-OBS", "T_OBS", "EXPTIME", "RSUN_OBS", "R_SUN", "DSUN_OBS", "HGLT_OBS"):
            header[key] = fresh[key]
        new_header = header.tostring().encode("ascii")
    if len(new_header) != info["datLoc"] - info["hdrLoc"]:  # pragma: no cover - defensive
        raise DemoDataError("re-headed FITS extension changed size; cannot splice")
    return raw[: info["hdrLoc"]] + new_header + raw[info["datLoc"] :]
