"""The synthetic Sun of the demo frames: disk, corona, active regions, a flare, AEC, B0.

A limb-darkened disk (``I(mu) = 1 - u (1 - mu)``, ``u = 0.5``) with a faint corona above the
limb, a few static active regions and one *flaring* active region at a fixed heliographic
position (Stonyhurst longitude -30°, latitude +18°, projected with the date's B0 angle).
:func:`flare_profile` is the flaring region's brightness over time, :func:`aec_exptime` the
exposure AIA's automatic exposure control would pick for it, :func:`frame_boxes` three pixel
boxes with known truth (``flare``, ``quiet``, ``corner``) and :func:`solar_b0` the B0 angle.
:mod:`intake_helio.testing.aia` turns the scene into FITS files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
    "nominal_exptime",
    "solar_b0",
]

BLANK = -32768
"""The int16 value that marks a missing pixel (the header's ``BLANK``)."""

REF_EXPTIME = 2.9
"""Exposure time (s) for which the model's brightness is given (counts scale with it)."""

# The flaring active region: Stonyhurst longitude / latitude (deg), Gaussian width and peak
# (relative to the quiet disk centre) of its brightness before the flare.
_AR_LON, _AR_LAT = -30.0, 18.0
_AR_SIGMA = 0.05  # in solar radii
_AR_PEAK = 12.0
# The static active regions: how many, their peak (relative to the disk centre) and width.
_STATIC_AR_COUNT = (3, 6)
_STATIC_AR_PEAK = (2.0, 6.0)
_STATIC_AR_SIGMA = (0.03, 0.07)
# The quiet-Sun box: centre (x, y) and half side, in solar radii from the disk centre.
_QUIET_XY, _QUIET_HALF = (0.3, -0.25), 0.12

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
# Nominal AIA exposure times (s) outside flares, per channel (like the AIA level-1 headers).
_NOMINAL_EXPTIME: dict[int, float] = {
    94: 2.9,
    131: 2.9,
    171: 2.0,
    193: 2.0,
    211: 2.9,
    304: 2.9,
    335: 2.9,
}
# Automatic exposure control: the exposure is the nominal one times the largest of these
# steps that keeps the flaring region's brightness times the step below _AEC_LIMIT.
_AEC_STEPS = (1.0, 0.7, 0.5, 0.3)
_AEC_LIMIT = 1.5
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


def solar_b0(time: Any) -> float:
    """The solar B0 angle in degrees (heliographic latitude of the disk centre seen from Earth).

    The standard approximation (Meeus, *Astronomical Algorithms*, ch. 29, with a low-precision
    solar longitude): ``B0 = asin(sin(lambda - Omega) sin I)``, ``I = 7.25°`` the inclination of
    the solar equator on the ecliptic, ``Omega`` (about 75.8° in 2000) its ascending node and
    ``lambda`` the Sun's geocentric ecliptic longitude; about -7.25° in early March and +7.25°
    in early September, accurate to ~0.01°.

    Parameters
    ----------
    time : time
        Naive UTC (or aware) time.

    Returns
    -------
    float
    """
    t = parse_time(time, "time") if not isinstance(time, pd.Timestamp) else time
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    jd = t.to_julian_date()
    n = jd - 2451545.0
    g = math.radians((357.528 + 0.9856003 * n) % 360.0)
    lam = 280.460 + 0.9856474 * n + 1.915 * math.sin(g) + 0.020 * math.sin(2.0 * g)
    omega = 73.6667 + 1.3958333 * (jd - 2396758.0) / 36525.0
    return math.degrees(
        math.asin(math.sin(math.radians(lam - omega)) * math.sin(math.radians(7.25)))
    )


def _geometry(t: pd.Timestamp, size: int) -> dict[str, float]:
    cdelt = 0.6 * 4096 / size
    dsun = _sun_distance_au(t)
    rsun_obs = _RSUN_1AU / dsun
    return {
        "b0": solar_b0(t),
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
        raise DemoDataError(f"intensity={intensity!r} must be a finite factor >= 0 (1 = no flare)")
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
    """The flaring region's peak factor in the demo runs for ``wavelength`` (4 at 94 Å)."""
    return _channel(wavelength)[3]


def nominal_exptime(wavelength: int = 94) -> float:
    """The AIA exposure time (s) of ``wavelength`` outside flares (2.9 s at 94 Å, 2 s at 171 Å)."""
    _channel(wavelength)
    return _NOMINAL_EXPTIME[int(wavelength)]


def aec_exptime(wavelength: int, factor: float | Sequence[float] | np.ndarray) -> Any:
    """The exposure time(s) AIA's automatic exposure control picks for a flare ``factor``.

    The nominal exposure (:func:`nominal_exptime`) times the largest step of 1, 0.7, 0.5 and
    0.3 that keeps ``factor * step <= 1.5`` (0.3 if none does): 1 (nominal) up to a factor
    1.5, 0.3 of nominal from a factor 3, as the camera shortens its exposures in steps so that
    the flare does not saturate. Rounded to the millisecond.

    Parameters
    ----------
    wavelength : int
        AIA channel in Å (:data:`WAVELENGTHS`).
    factor : float or array of float
        Brightness factor(s) of the flaring region (e.g. :func:`flare_profile`).

    Returns
    -------
    float or numpy.ndarray
        Seconds; an array for an array ``factor``.
    """
    nominal = nominal_exptime(wavelength)
    f = np.asarray(factor, dtype=np.float64)
    step = np.full(f.shape, _AEC_STEPS[-1])
    for s in reversed(_AEC_STEPS[:-1]):
        step = np.where(f * s <= _AEC_LIMIT, s, step)
    out = np.round(nominal * step, 3)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- scene


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels of a frame: rows ``y0:y1`` and columns ``x0:x1`` (0-based).

    Rows are ``y`` (solar north up, as in the FITS file: row 0 is the bottom), columns ``x``.
    """

    name: str
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` for numpy indexing, ``image[box.slices]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def cutout(self) -> dict[str, slice]:
        """The box as a pixel ``cutout=dict(y=..., x=...)`` for the library's readers."""
        return {"y": slice(self.y0, self.y1), "x": slice(self.x0, self.x1)}

    def mean(self, pixels: np.ndarray) -> float:
        """Mean of the non-``BLANK`` (or non-NaN) values of ``pixels`` in the box."""
        sub = pixels[self.slices]
        if sub.dtype == np.int16:
            good = sub != BLANK
            n = int(np.count_nonzero(good))
            return float(np.sum(sub[good], dtype=np.int64)) / n if n else float("nan")
        return float(np.nanmean(sub, dtype=np.float64))


def _ar_centre(b0: float) -> tuple[float, float]:
    """``(x, y)`` of the flaring region in solar radii from the disk centre (orthographic)."""
    lon, lat, b = (math.radians(v) for v in (_AR_LON, _AR_LAT, b0))
    x = math.cos(lat) * math.sin(lon)
    y = math.sin(lat) * math.cos(b) - math.cos(lat) * math.cos(lon) * math.sin(b)
    return x, y


def _box_around(name: str, xy: tuple[float, float], half: float, c: float, r_sun: float, size):
    h = max(1, round(half * r_sun))
    i, j = round(c + xy[1] * r_sun), round(c + xy[0] * r_sun)
    return Box(name, max(i - h, 0), min(i + h + 1, size), max(j - h, 0), min(j + h + 1, size))


def _boxes(size: int, r_sun: float, b0: float) -> dict[str, Box]:
    c = (size - 1) / 2.0
    corner = max(2, size // 8)
    return {
        "flare": _box_around("flare", _ar_centre(b0), _AR_SIGMA, c, r_sun, size),
        "quiet": _box_around("quiet", _QUIET_XY, _QUIET_HALF, c, r_sun, size),
        "corner": Box("corner", size - corner, size, size - corner, size),
    }


def frame_boxes(time: Any, size: int = 256) -> dict[str, Box]:
    """Three named pixel boxes of a frame at ``time``: ``flare``, ``quiet`` and ``corner``.

    ``flare`` is centred on the flaring active region (half side its Gaussian width, 0.05
    solar radius): its brightness in DN/s follows :func:`flare_profile` (it rises by ~90 % of
    the flare amplitude, the rest being quiet disk under the region). ``quiet`` is quiet Sun
    (0.3 R west, 0.25 R south of the disk centre; half side 0.12 R) and ``corner`` the
    top-right corner (``size // 8`` pixels square) off the limb: both are constant in DN/s.

    Parameters
    ----------
    time : time
        The frame's time (the region's position follows the B0 angle, by < 0.1 pixel a day
        at 256 pixels).
    size : int
        Pixels per side.

    Returns
    -------
    dict of str to Box
    """
    t = parse_time(time, "time")
    geo = _geometry(t, int(size))
    return _boxes(int(size), _scene_r_sun(geo), _scene_b0(geo))


def _scene_r_sun(geo: dict[str, float]) -> float:
    return round(geo["r_sun"], 3)


def _scene_b0(geo: dict[str, float]) -> float:
    return round(geo["b0"], 2)


def _gaussian_patch(size: int, x0: float, y0: float, sigma: float):
    """A Gaussian of peak 1 on a +-4 sigma patch: ``(patch float32, (i0, i1, j0, j1))``."""
    half = math.ceil(4 * sigma)
    i0, i1 = max(int(y0) - half, 0), min(int(y0) + half + 1, size)
    j0, j1 = max(int(x0) - half, 0), min(int(x0) + half + 1, size)
    gy = np.exp(-0.5 * ((np.arange(i0, i1) - y0) / sigma) ** 2).astype(np.float32)
    gx = np.exp(-0.5 * ((np.arange(j0, j1) - x0) / sigma) ** 2).astype(np.float32)
    return gy[:, None] * gx[None, :], (i0, i1, j0, j1)


@functools.lru_cache(maxsize=2)
def _scene(size: int, seed: int, r_sun: float, b0: float):
    """The static expected DN (intensity 1, REF_EXPTIME, brightness 1) and the flaring region.

    Returns ``(base, ar_patch, (i0, i1, j0, j1))``: ``base`` (float32, read-only) is the quiet
    disk, the corona, the static active regions and the flaring region before the flare;
    ``ar_patch`` the flaring region alone on rows ``i0:i1``, columns ``j0:j1``. Cached: the
    frames of a run share them (the key changes by < 1e-3 pixel and 0.01° a few times a day).
    """
    c = (size - 1) / 2.0  # 0-based centre
    # Quiet Sun: limb-darkened disk, power-law corona outside the limb.
    yy = (np.arange(size, dtype=np.float32) - np.float32(c)) / np.float32(r_sun)
    rho2 = yy[:, None] ** 2 + yy[None, :] ** 2
    mu = np.sqrt(np.maximum(np.float32(1.0) - rho2, np.float32(0.0)))
    disk = np.float32(_DISK_DN) * (np.float32(1.0 - _LIMB_DARKENING) + _LIMB_DARKENING * mu)
    corona = np.float32(_CORONA_DN) * np.maximum(rho2, np.float32(1.0)) ** np.float32(
        -_CORONA_POWER / 2
    )
    base = np.where(rho2 < 1.0, disk, corona)
    del rho2, mu, disk, corona

    # The flaring region, at a fixed heliographic position.
    ax, ay = _ar_centre(b0)
    ar_sigma = _AR_SIGMA * r_sun
    ar_patch, (i0, i1, j0, j1) = _gaussian_patch(size, c + ax * r_sun, c + ay * r_sun, ar_sigma)
    ar_patch *= np.float32(_AR_PEAK * _DISK_DN)
    base[i0:i1, j0:j1] += ar_patch

    # Static active regions: the same layout for every frame of a seed, clear of the flaring
    # region, the quiet box and the disk centre.
    ar_rng = np.random.default_rng([int(seed), 0xA12])
    keep_out = [((ax, ay), 0.3), (_QUIET_XY, 0.3), ((0.0, 0.0), 0.25)]
    placed = 0
    wanted = int(ar_rng.integers(*_STATIC_AR_COUNT))
    for _ in range(200):
        if placed == wanted:
            break
        rad = 0.75 * math.sqrt(ar_rng.uniform(0.0, 1.0))
        ang = ar_rng.uniform(0.0, 2.0 * math.pi)
        peak = _DISK_DN * ar_rng.uniform(*_STATIC_AR_PEAK)
        sig = ar_rng.uniform(*_STATIC_AR_SIGMA)
        x, y = rad * math.cos(ang), rad * math.sin(ang)
        if any(math.hypot(x - kx, y - ky) < d + 4 * sig for (kx, ky), d in keep_out):
            continue
        patch, (k0, k1, l0, l1) = _gaussian_patch(size, c + x * r_sun, c + y * r_sun, sig * r_sun)
        base[k0:k1, l0:l1] += np.float32(peak) * patch
        placed += 1
    base.setflags(write=False)
    ar_patch.setflags(write=False)
    return base, ar_patch, (i0, i1, j0, j1)
