"""Synthetic SDO/AIA level-1-like frames (94 Å and other EUV channels) and a flare.

:func:`make_aia_frame` draws one AIA-like frame: a limb-darkened solar disk with a fainter
corona outside the limb, a few brighter active regions, Poisson (photon) noise plus Gaussian
read noise, stored like AIA level 1 (int16, ``BLANK = -32768``, RICE_1 tile compression with
one row per tile, in extension 1). The channel (``wavelength``: 94, 131, 171, 193, 211, 304
or 335 Å) sets ``WAVELNTH``, ``WAVE_STR``, ``INSTRUME`` and the brightness of the disk.
:func:`flare_profile` gives the brightness factor of a flare over time and :func:`frame_bytes`
the bytes of a FITS file. :func:`render_frame` and :func:`reheader_frame` are the fast paths
:mod:`intake_helio.testing.demo_data` uses to write runs of frames.

The data are synthetic: every header carries ``ORIGIN`` and a ``COMMENT`` saying so.
"""

from __future__ import annotations

import io
import math
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
    "flare_amplitude",
    "flare_profile",
    "frame_bytes",
    "make_aia_frame",
    "reheader_frame",
    "render_frame",
]

BLANK = -32768
"""The int16 value that marks a missing pixel (the header's ``BLANK``)."""

REF_EXPTIME = 2.9
"""Exposure time (s) for which the model's brightness is given (counts scale with it)."""

_DISK_DN = 520.0  # DN at disk centre, quiet Sun, intensity 1, EXPTIME 2.9 s
_LIMB_DARKENING = 0.5  # I(mu) = 1 - u (1 - mu)
_CORONA_DN = 180.0  # DN just outside the limb
_CORONA_POWER = 6.0  # off-limb fall-off, I ~ rho**-p
_READ_NOISE_DN = 1.2
_RSUN_1AU = 959.63  # arcsec, solar radius seen from 1 AU
_AU_M = 1.495978707e11

# wavelength (Å) -> (INSTRUME, WAVE_STR, brightness relative to 94 Å, flare amplitude).
# Not calibrated: the quiet-Sun brightness and flare response are only plausible in order
# (the hot 94 Å channel brightens most in a flare; 171 Å is brighter but responds less).
_CHANNELS: dict[int, tuple[str, str, float, float]] = {
    94: ("AIA_4", "94_THIN", 1.0, 4.0),
    131: ("AIA_1", "131_THIN", 1.0, 3.5),
    171: ("AIA_3", "171_THIN", 1.8, 1.6),
    193: ("AIA_2", "193_THIN", 1.8, 1.8),
    211: ("AIA_2", "211_THIN", 1.4, 2.0),
    304: ("AIA_4", "304_THIN", 1.2, 1.8),
    335: ("AIA_1", "335_THIN", 1.0, 2.5),
}
_TELESCOPES = {
    "AIA_1": "AIA telescope 1 (131/335)",
    "AIA_2": "AIA telescope 2 (193/211)",
    "AIA_3": "AIA telescope 3 (171/1600/1700/4500)",
    "AIA_4": "AIA telescope 4 (94/304)",
}

WAVELENGTHS: tuple[int, ...] = tuple(_CHANNELS)
"""The AIA EUV channels (Å) the synthetic frames can be made for."""
_ISO_MS = "%Y-%m-%dT%H:%M:%S.%fZ"


# --------------------------------------------------------------------------- flare


def _timedelta(value: Any, name: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise DemoDataError(
            f"{name}={value!r} is not a duration; expected e.g. '20min', '4min' or a Timedelta"
        ) from exc
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise DemoDataError(f"{name}={value!r} must be a positive duration such as '20min'")
    return td


def _naive_utc_index(times: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(times))
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx


def flare_profile(
    times: pd.DatetimeIndex | Sequence,
    peak: Any = None,
    rise: Any = "20min",
    decay: Any = "60min",
    amplitude: float = 4.0,
) -> np.ndarray:
    """Multiplicative irradiance factor of a flare: a fast rise then an exponential decay.

    ``factor = 1 + (amplitude - 1) * shape`` where ``shape`` is a half Gaussian of width
    ``rise`` before the peak and ``exp(-(t - peak) / decay)`` after it, so the factor is
    1 far from the flare and ``amplitude`` at the peak.

    Parameters
    ----------
    times : pandas.DatetimeIndex or sequence of times
        Times to evaluate (naive values are UTC; aware ones are converted to UTC).
    peak : time, optional
        Peak time; default 40 % of the way from the first to the last time.
    rise, decay : str or pandas.Timedelta
        Gaussian width of the rise and e-folding time of the decay.
    amplitude : float
        Factor at the peak (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 factors >= 1, one per time.

    Raises
    ------
    DemoDataError
        (a ``ValueError``) ``amplitude`` < 1, a non-positive ``rise``/``decay``, or
        unparseable times.
    """
    amplitude = float(amplitude)
    if not math.isfinite(amplitude) or amplitude < 1.0:
        raise DemoDataError(f"amplitude={amplitude!r} must be a finite factor >= 1 (1 = no flare)")
    rise_td = _timedelta(rise, "rise")
    decay_td = _timedelta(decay, "decay")
    try:
        idx = _naive_utc_index(times)
    except (ValueError, TypeError) as exc:
        raise DemoDataError(f"times={times!r} cannot be read as times") from exc
    if len(idx) == 0:
        return np.zeros(0, dtype=np.float64)
    default_peak = idx.min() + 0.4 * (idx.max() - idx.min())
    t_peak = default_peak if peak is None else parse_time(peak, "peak")
    dt = (idx - t_peak) / pd.Timedelta(1, "s")
    dt = np.asarray(dt, dtype=np.float64)
    rise_s = rise_td / pd.Timedelta(1, "s")
    decay_s = decay_td / pd.Timedelta(1, "s")
    shape = np.where(
        dt < 0,
        np.exp(-0.5 * (np.minimum(dt, 0.0) / rise_s) ** 2),
        np.exp(-np.maximum(dt, 0.0) / decay_s),
    )
    return 1.0 + (amplitude - 1.0) * shape


# --------------------------------------------------------------------------- frames


def _iso_z(t: pd.Timestamp, ms: bool = True) -> str:
    return t.strftime(_ISO_MS)[:-4] + "Z" if ms else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sun_distance_au(t: pd.Timestamp) -> float:
    """Earth-Sun distance in AU (first-order orbit: perihelion around 4 January)."""
    day = t.day_of_year - 1 + (t - t.normalize()) / pd.Timedelta(1, "D")
    return 1.0 - 0.01671 * math.cos(2.0 * math.pi * (day - 3.0) / 365.256)


def _geometry(t: pd.Timestamp, size: int) -> dict[str, float]:
    cdelt = 0.6 * 4096 / size
    dsun = _sun_distance_au(t)
    rsun_obs = _RSUN_1AU / dsun
    day = (t - pd.Timestamp("2020-03-06")).total_seconds() / 86400.0
    return {
        "b0": 7.25 * math.sin(2 * math.pi * day / 365.25),  # solar B0 angle, roughly
        "cdelt": cdelt,
        "crpix": (size + 1) / 2.0,
        "rsun_obs": rsun_obs,
        "r_sun": rsun_obs / cdelt,
        "dsun_m": dsun * _AU_M,
    }


def _seed_words(seed: int, t: pd.Timestamp) -> list[int]:
    return [int(seed), int(t.value) & 0xFFFF_FFFF_FFFF_FFFF]


def _check_frame_args(size: int, seed: int, intensity: float, exptime: float, blank_fraction):
    if not isinstance(size, int | np.integer) or size < 16:
        raise DemoDataError(
            f"size={size!r} must be an integer >= 16 (pixels per side; AIA is 4096)"
        )
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise DemoDataError(f"seed={seed!r} must be a non-negative integer")
    if not math.isfinite(intensity) or intensity < 0:
        raise DemoDataError(f"intensity={intensity!r} must be a finite factor >= 0 (1 = quiet Sun)")
    if not math.isfinite(exptime) or exptime <= 0:
        raise DemoDataError(f"exptime={exptime!r} must be a positive exposure time in seconds")
    if not 0.0 <= blank_fraction < 1.0:
        raise DemoDataError(f"blank_fraction={blank_fraction!r} must be in [0, 1)")


def _channel(wavelength: Any) -> tuple[str, str, float, float]:
    """``(INSTRUME, WAVE_STR, brightness, flare amplitude)`` of an AIA EUV wavelength."""
    known = isinstance(wavelength, int | np.integer) and not isinstance(wavelength, bool)
    if not known or int(wavelength) not in _CHANNELS:
        raise DemoDataError(
            f"wavelength={wavelength!r} is not an AIA EUV channel; expected one of "
            f"{', '.join(map(str, WAVELENGTHS))} (Å)"
        )
    return _CHANNELS[int(wavelength)]


def flare_amplitude(wavelength: int = 94) -> float:
    """The flare's peak factor in the demo runs for ``wavelength`` (4 at 94 Å)."""
    return _channel(wavelength)[3]


def _frame_pixels(
    t: pd.Timestamp,
    size: int,
    seed: int,
    intensity: float,
    exptime: float,
    blank_fraction: float,
    wavelength: int = 94,
) -> np.ndarray:
    """The int16 pixels of one frame (BLANK where missing); deterministic from seed and time."""
    geo = _geometry(t, size)
    r_sun = geo["r_sun"]
    c = geo["crpix"] - 1.0  # 0-based centre
    scale = np.float32(intensity * exptime / REF_EXPTIME * _channel(wavelength)[2])

    # Quiet Sun: limb-darkened disk, power-law corona outside the limb.
    yy = (np.arange(size, dtype=np.float32) - np.float32(c)) / np.float32(r_sun)
    rho2 = yy[:, None] ** 2 + yy[None, :] ** 2
    mu = np.sqrt(np.maximum(np.float32(1.0) - rho2, np.float32(0.0)))
    disk = np.float32(_DISK_DN) * (np.float32(1.0 - _LIMB_DARKENING) + _LIMB_DARKENING * mu)
    corona = np.float32(_CORONA_DN) * np.maximum(rho2, np.float32(1.0)) ** np.float32(
        -_CORONA_POWER / 2
    )
    lam = np.where(rho2 < 1.0, disk, corona)
    del rho2, mu, disk, corona

    # Active regions: the same layout for every frame of a seed.
    ar_rng = np.random.default_rng([int(seed), 0xA12])
    for _ in range(int(ar_rng.integers(3, 6))):
        rad = 0.75 * math.sqrt(ar_rng.uniform(0.0, 1.0))
        ang = ar_rng.uniform(0.0, 2.0 * math.pi)
        peak_dn = _DISK_DN * ar_rng.uniform(2.0, 6.0)
        sigma = r_sun * ar_rng.uniform(0.03, 0.07)
        x0, y0 = c + rad * r_sun * math.cos(ang), c + rad * r_sun * math.sin(ang)
        half = math.ceil(4 * sigma)
        i0, i1 = max(int(y0) - half, 0), min(int(y0) + half + 1, size)
        j0, j1 = max(int(x0) - half, 0), min(int(x0) + half + 1, size)
        gy = np.exp(-0.5 * ((np.arange(i0, i1) - y0) / sigma) ** 2).astype(np.float32)
        gx = np.exp(-0.5 * ((np.arange(j0, j1) - x0) / sigma) ** 2).astype(np.float32)
        lam[i0:i1, j0:j1] += np.float32(peak_dn) * gy[:, None] * gx[None, :]
    lam *= scale

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
    exptime: float = 2.9,
    blank_fraction: float = 0.001,
    wavelength: int = 94,
) -> fits.HDUList:
    """Make one synthetic AIA level-1-like frame (94 Å unless ``wavelength`` says otherwise).

    The image is a limb-darkened disk (radius ``RSUN_OBS / CDELT``, about 0.4 * ``size``) with a
    power-law corona outside the limb and 3–5 brighter active regions (their layout depends on
    ``seed`` only), Poisson noise in DN plus 1.2 DN Gaussian read noise, rounded to int16; a
    random ``blank_fraction`` of the pixels is set to ``BLANK = -32768``. Counts scale with
    ``intensity * exptime / 2.9``; the quiet-Sun disk centre is ~520 DN at 1 and 2.9 s, which
    makes a 4096² file ~14 MB (2.4x compression, like the live AIA 94 Å files).

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
        Factor applied to the whole image (e.g. :func:`flare_profile`).
    exptime : float
        Exposure time in seconds (``EXPTIME``).
    blank_fraction : float
        Fraction of pixels set to ``BLANK``.
    wavelength : int
        AIA EUV channel in Å (:data:`WAVELENGTHS`): sets ``WAVELNTH``, ``WAVE_STR`` and
        ``INSTRUME``, and scales the whole image by the channel's brightness (1 at 94 Å,
        1.8 at 171 Å); the shape of disk, corona and active regions is the same.

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
    intensity, exptime, blank_fraction = float(intensity), float(exptime), float(blank_fraction)
    _check_frame_args(size, seed, intensity, exptime, blank_fraction)
    _channel(wavelength)
    wav = int(wavelength)
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
) -> tuple[bytes, float]:
    """The FITS file of :func:`make_aia_frame` as bytes, and the exact mean of its good pixels.

    The fast path for writing many frames: no argument checks (use :func:`make_aia_frame`
    for checked arguments) and no ``HDUList`` kept.

    Parameters
    ----------
    time : pandas.Timestamp
        Naive UTC start of the exposure.
    size, seed, intensity, exptime, blank_fraction, wavelength
        As for :func:`make_aia_frame`, already checked.

    Returns
    -------
    (bytes, float)
        The file, and the float64 mean of its non-``BLANK`` pixels (what astropy's float32
        image averages to, NaN excluded).
    """
    pixels = _frame_pixels(time, size, seed, intensity, exptime, blank_fraction, wavelength)
    stats = _good_stats(pixels)
    header = _frame_header(time, size, exptime, stats, wavelength)
    return frame_bytes(_hdulist(pixels, header)), stats[0]


def reheader_frame(raw: bytes, time: pd.Timestamp, size: int, exptime: float) -> bytes:
    """Return ``raw`` with the time-dependent header cards of extension 1 set for ``time``.

    The compressed tiles are copied unchanged: pixels are identical, only the header differs
    (``DATE-OBS``, ``T_OBS``, ``EXPTIME``, ``RSUN_OBS``, ``R_SUN``, ``DSUN_OBS``).

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
        for key in ("DATE-OBS", "T_OBS", "EXPTIME", "RSUN_OBS", "R_SUN", "DSUN_OBS"):
            header[key] = fresh[key]
        new_header = header.tostring().encode("ascii")
    if len(new_header) != info["datLoc"] - info["hdrLoc"]:  # pragma: no cover - defensive
        raise DemoDataError("re-headed FITS extension changed size; cannot splice")
    return raw[: info["hdrLoc"]] + new_header + raw[info["datLoc"] :]
