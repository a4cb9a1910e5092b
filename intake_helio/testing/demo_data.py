"""A synthetic SDO/AIA 94 Å dataset published as a CloudCatalog, for the demo, tests and benchmarks.

:func:`make_aia_frame` draws one AIA-94-like frame: a limb-darkened solar disk with a fainter
corona outside the limb, a few brighter active regions, Poisson (photon) noise plus Gaussian
read noise, stored like AIA level 1 (int16, ``BLANK = -32768``, RICE_1 tile compression with
one row per tile, in extension 1). :func:`write_demo_dataset` writes a run of such frames
through fsspec (local S3, ``memory://``, a local folder) together with the three CloudCatalog
levels: yearly CSV indexes, a bucket ``catalog.json`` and a registry JSON, and returns a
:class:`DemoDataset` with the expected per-frame means so that readers can be checked exactly.

The data are synthetic: every header carries ``ORIGIN`` and a ``COMMENT`` saying so.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import io
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits

from ..base.times import parse_time
from ..io.storage import filesystem

__all__ = [
    "DemoDataset",
    "flare_profile",
    "frame_bytes",
    "make_aia_frame",
    "write_demo_dataset",
]

BLANK = -32768
"""The int16 value that marks a missing pixel (the header's ``BLANK``)."""

_REF_EXPTIME = 2.9  # s; the model's brightness is given for this exposure
_DISK_DN = 520.0  # DN at disk centre, quiet Sun, intensity 1, EXPTIME 2.9 s
_LIMB_DARKENING = 0.5  # I(mu) = 1 - u (1 - mu)
_CORONA_DN = 180.0  # DN just outside the limb
_CORONA_POWER = 6.0  # off-limb fall-off, I ~ rho**-p
_READ_NOISE_DN = 1.2
_RSUN_1AU = 959.63  # arcsec, solar radius seen from 1 AU
_AU_M = 1.495978707e11
_RISE, _DECAY = pd.Timedelta("20min"), pd.Timedelta("60min")  # flare of the demo run
_RUN = pd.Timedelta("192min")  # default run (48 x 4 min); shorter runs get a shorter flare
_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_ISO_MS = "%Y-%m-%dT%H:%M:%S.%fZ"


# --------------------------------------------------------------------------- flare


def _timedelta(value: Any, name: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name}={value!r} is not a duration; expected e.g. '20min', '4min' or a Timedelta"
        ) from exc
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ValueError(f"{name}={value!r} must be a positive duration such as '20min'")
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
    ValueError
        ``amplitude`` < 1, a non-positive ``rise``/``decay``, or unparseable times.
    """
    amplitude = float(amplitude)
    if not math.isfinite(amplitude) or amplitude < 1.0:
        raise ValueError(f"amplitude={amplitude!r} must be a finite factor >= 1 (1 = no flare)")
    rise_td = _timedelta(rise, "rise")
    decay_td = _timedelta(decay, "decay")
    try:
        idx = _naive_utc_index(times)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"times={times!r} cannot be read as times") from exc
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


def _sun_distance_au(t: pd.Timestamp) -> float:
    """Earth-Sun distance in AU (first-order orbit: perihelion around 4 January)."""
    day = t.day_of_year - 1 + (t - t.normalize()) / pd.Timedelta(1, "D")
    return 1.0 - 0.01671 * math.cos(2.0 * math.pi * (day - 3.0) / 365.256)


def _geometry(t: pd.Timestamp, size: int) -> dict[str, float]:
    cdelt = 0.6 * 4096 / size
    dsun = _sun_distance_au(t)
    rsun_obs = _RSUN_1AU / dsun
    return {
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
        raise ValueError(f"size={size!r} must be an integer >= 16 (pixels per side; AIA is 4096)")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    if not math.isfinite(intensity) or intensity < 0:
        raise ValueError(f"intensity={intensity!r} must be a finite factor >= 0 (1 = quiet Sun)")
    if not math.isfinite(exptime) or exptime <= 0:
        raise ValueError(f"exptime={exptime!r} must be a positive exposure time in seconds")
    if not 0.0 <= blank_fraction < 1.0:
        raise ValueError(f"blank_fraction={blank_fraction!r} must be in [0, 1)")


def _frame_pixels(
    t: pd.Timestamp,
    size: int,
    seed: int,
    intensity: float,
    exptime: float,
    blank_fraction: float,
) -> np.ndarray:
    """The int16 pixels of one frame (BLANK where missing); deterministic from seed and time."""
    geo = _geometry(t, size)
    r_sun = geo["r_sun"]
    c = geo["crpix"] - 1.0  # 0-based centre
    scale = np.float32(intensity * exptime / _REF_EXPTIME)

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
    t: pd.Timestamp, size: int, exptime: float, stats: tuple[float, int, int, int]
) -> fits.Header:
    geo = _geometry(t, size)
    mean, vmin, vmax, n_blank = stats
    t_obs = t + pd.Timedelta(exptime / 2.0, "s")
    cards = [
        ("ORIGIN", "intake-helio demo", "synthetic data, not an observation"),
        ("TELESCOP", "SDO/AIA", "Solar Dynamics Observatory / AIA"),
        ("INSTRUME", "AIA_4", "AIA telescope 4 (94/304)"),
        ("DETECTOR", "AIA", None),
        ("WAVELNTH", 94, "[angstrom] wavelength"),
        ("WAVEUNIT", "angstrom", None),
        ("WAVE_STR", "94_THIN", None),
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
        ("DATAMIN", vmin, "minimum of good pixels"),
        ("DATAMAX", vmax, "maximum of good pixels"),
        ("DATAMEAN", mean, "mean of good pixels"),
        ("MISSVALS", n_blank, "number of BLANK pixels"),
        ("BLANK", BLANK, "missing pixel value"),
    ]
    header = fits.Header()
    for key, value, comment in cards:
        header[key] = (value, comment) if comment else value
    header["COMMENT"] = "Synthetic AIA-94-like frame written by intake_helio.testing.demo_data."
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
) -> fits.HDUList:
    """Make one synthetic AIA 94 Å level-1-like frame.

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

    Returns
    -------
    astropy.io.fits.HDUList
        An empty ``PrimaryHDU`` and, in extension 1, a ``CompImageHDU`` (RICE_1, int16, one row
        per tile) whose header has ``BLANK``, so astropy reads float32 with NaN there.

    Raises
    ------
    ValueError
        An argument is out of range.
    TimeRangeError
        ``time`` cannot be parsed.
    """
    t = parse_time(time, "time")
    intensity, exptime, blank_fraction = float(intensity), float(exptime), float(blank_fraction)
    _check_frame_args(size, seed, intensity, exptime, blank_fraction)
    pixels = _frame_pixels(t, int(size), int(seed), intensity, exptime, blank_fraction)
    header = _frame_header(t, int(size), exptime, _good_stats(pixels))
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


def _render(args: tuple) -> tuple[bytes, float]:
    """Worker: (time, size, seed, intensity, exptime, blank_fraction) -> (file bytes, mean)."""
    t, size, seed, intensity, exptime, blank_fraction = args
    pixels = _frame_pixels(t, size, seed, intensity, exptime, blank_fraction)
    stats = _good_stats(pixels)
    return frame_bytes(_hdulist(pixels, _frame_header(t, size, exptime, stats))), stats[0]


def _rehead(raw: bytes, t: pd.Timestamp, size: int, exptime: float) -> bytes:
    """Return ``raw`` with the time-dependent header cards of extension 1 set for ``t``.

    The compressed tiles are copied unchanged: pixels are identical, only the header differs.
    """
    with fits.open(io.BytesIO(raw), disable_image_compression=True) as hdul:
        info = hdul.fileinfo(1)
        header = hdul[1].header.copy()
        fresh = _frame_header(t, size, exptime, (0.0, 0, 0, 0))
        for key in ("DATE-OBS", "T_OBS", "EXPTIME", "RSUN_OBS", "R_SUN", "DSUN_OBS"):
            header[key] = fresh[key]
        new_header = header.tostring().encode("ascii")
    if len(new_header) != info["datLoc"] - info["hdrLoc"]:  # pragma: no cover - defensive
        raise RuntimeError("re-headed FITS extension changed size; cannot splice")
    return raw[: info["hdrLoc"]] + new_header + raw[info["datLoc"] :]


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class DemoDataset:
    """What :func:`write_demo_dataset` wrote.

    Attributes
    ----------
    root : str
        Bucket root endpoint, ending with ``/`` (e.g. ``"s3://helio-demo/"``).
    registry_url : str
        URL of the registry JSON written (``<root>HelioDataRegistry.json``).
    dataset_id : str
        Dataset id in ``<root>catalog.json``.
    start, stop : pandas.Timestamp
        Naive UTC; ``stop`` is exclusive (last frame start + cadence).
    datakeys : tuple of str
        URL of every frame, in time order.
    corrupt : tuple of str
        The datakeys written truncated (unreadable).
    expected_mean : tuple of float
        Per frame, the float64 nanmean of the float32 image astropy reads (NaN if corrupt).
    """

    root: str
    registry_url: str
    dataset_id: str
    start: pd.Timestamp
    stop: pd.Timestamp
    datakeys: tuple[str, ...]
    corrupt: tuple[str, ...]
    expected_mean: tuple[float, ...]

    @property
    def catalog_url(self) -> str:
        """URL of the bucket catalog, ``<root>catalog.json``."""
        return f"{self.root}catalog.json"

    @property
    def times(self) -> pd.DatetimeIndex:
        """Start time of every frame (``start + i * cadence``)."""
        return pd.date_range(self.start, self.stop, periods=len(self.datakeys) + 1)[:-1]


def _iso_z(t: pd.Timestamp, ms: bool = True) -> str:
    return t.strftime(_ISO_MS)[:-4] + "Z" if ms else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _data_key(t: pd.Timestamp) -> str:
    return (
        f"sdo/aia/{t:%Y%m%d}/0094/aia_lev1_94a_{t:%Y_%m_%d}t{t:%H_%M_%S}_"
        f"{t.microsecond // 10000:02d}z_image_lev1.fits"
    )


def _corrupt_indices(frames: int, corrupt: int, peak_index: int) -> list[int]:
    """``corrupt`` frame indices nearest the middle of the run, never the flare peak."""
    mid = frames // 2
    order = sorted((i for i in range(frames) if i != peak_index), key=lambda i: (abs(i - mid), i))
    return sorted(order[:corrupt])


def _groups(factors: np.ndarray, reuse: int | None) -> list[tuple[int, list[int]]]:
    """Frames that share pixels, as ``(representative, members)`` pairs.

    Without ``reuse`` every frame is its own group. Otherwise the flare factors are quantised
    to ``reuse`` evenly spaced levels from the lowest to the highest factor; each frame joins
    the nearest level and each level's pixels are those of its member closest to the level, so
    the quiet baseline and the flare peak are both kept exactly.
    """
    n = len(factors)
    if reuse is None or reuse >= n:
        return [(i, [i]) for i in range(n)]
    lo, hi = float(np.min(factors)), float(np.max(factors))
    if reuse == 1 or hi == lo:
        middle = int(np.argsort(factors, kind="stable")[n // 2])
        return [(middle, list(range(n)))]
    levels = lo + (hi - lo) * np.arange(reuse) / (reuse - 1)
    nearest = np.argmin(np.abs(factors[:, None] - levels[None, :]), axis=1)
    out = []
    for k in range(reuse):
        members = [int(i) for i in np.flatnonzero(nearest == k)]
        if members:
            rep = min(members, key=lambda i: (abs(factors[i] - levels[k]), i))
            out.append((rep, members))
    return out


def _normalise_root(root: str) -> str:
    if not isinstance(root, str) or not root:
        raise ValueError(f"root={root!r} must be a URL such as 's3://helio-demo/'")
    if "://" not in root:
        root = Path(root).expanduser().resolve().as_uri()
    return root if root.endswith("/") else root + "/"


def _generate(tasks: list[tuple], workers: int) -> Iterator[tuple[int, tuple[bytes, float]]]:
    """Yield ``(task index, _render(task))`` in order, with at most 2 * workers in flight.

    Threads, not processes: numpy's random generators and array maths and the RICE compressor
    release the GIL, so threads scale on the heavy part (about 1.6x with 2 workers on 2 cores)
    without pickling 14 MB results or re-importing the caller's ``__main__`` in child processes.
    """
    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            yield i, _render(task)
        return
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="demo-frame"
    ) as pool:
        pending: dict[int, concurrent.futures.Future] = {}
        nxt = 0
        try:
            for i in range(len(tasks)):
                while nxt < len(tasks) and len(pending) < 2 * workers:
                    pending[nxt] = pool.submit(_render, tasks[nxt])
                    nxt += 1
                yield i, pending.pop(i).result()
        finally:
            for future in pending.values():
                future.cancel()


class _Writer:
    """Write whole objects through one fsspec filesystem, creating parent folders once."""

    def __init__(self, fs):
        self.fs = fs
        self._made: set[str] = set()

    def put(self, path: str, data: bytes) -> None:
        parent = self.fs._parent(path)
        if parent not in self._made:
            self.fs.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        self.fs.pipe_file(path, data)


def write_demo_dataset(
    root: str = "s3://helio-demo/",
    storage_options: dict | None = None,
    *,
    frames: int = 48,
    size: int = 256,
    start: Any = "2020-12-31T22:00:00",
    cadence: Any = "4min",
    dataset_id: str = "aia_0094",
    corrupt: int = 1,
    seed: int = 0,
    registry_name: str = "Local demo (intake-helio)",
    reuse: int | None = None,
    workers: int = 1,
) -> DemoDataset:
    """Write a synthetic AIA 94 Å run with a flare, and publish it as a CloudCatalog.

    Writes, under ``root``:

    - data files
      ``sdo/aia/<YYYYMMDD>/0094/aia_lev1_94a_<YYYY_MM_DD>t<HH_MM_SS>_00z_image_lev1.fits``
      (see :func:`make_aia_frame`) with ``intensity = flare_profile(times, rise=..., decay=...)``,
      peaking 40 % into the run; rise and decay are 20 and 60 min, shortened in proportion for
      runs shorter than the default 192 min so that the flare is always visible;
    - yearly indexes ``sdo/aia/registries/<dataset_id>_<YYYY>.csv`` with the header
      ``# start, stop, datakey, filesize`` (each row in the year of its start);
    - ``catalog.json`` (an existing one keeps its other datasets) and ``HelioDataRegistry.json``
      listing ``root`` as the only endpoint.

    ``corrupt`` frames near the middle of the run (never the peak) are written truncated to
    half their bytes; their index rows still list them with the truncated size.

    Parameters
    ----------
    root : str
        Bucket root URL (``s3://bucket/``, ``memory://name/``, ``file:///dir/`` or a local
        path); a missing trailing ``/`` is added. An S3 bucket is created if missing.
    storage_options : dict, optional
        fsspec options, e.g. ``LocalS3().storage_options``.
    frames : int
        Number of frames (>= 1).
    size : int
        Pixels per side; 4096 gives full-size ~14 MB files.
    start : time
        Start of the first frame (naive UTC); the default makes the run cross into 2021.
    cadence : str or pandas.Timedelta
        Time between frames; each frame's index ``stop`` is its start + cadence.
    dataset_id : str
        Dataset id (letters, digits, ``-``, ``_``).
    corrupt : int
        Number of truncated frames (``0 <= corrupt < frames``).
    seed : int
        Non-negative seed; everything written is deterministic from it (except the
        modification dates in the JSON files).
    registry_name : str
        ``name`` of the registry entry.
    reuse : int, optional
        Generate at most ``reuse`` distinct pixel arrays: the flare factors are quantised to
        ``reuse`` levels (lowest and highest included) and the frames of a level share the
        pixels and compressed tiles of one member; headers and times stay per frame. Makes many
        full-size frames fast to write; the flare becomes a staircase.
    workers : int
        Threads that generate and compress frames in parallel (1 = none).

    Returns
    -------
    DemoDataset

    Raises
    ------
    ValueError
        An argument is out of range.
    TimeRangeError
        ``start`` cannot be parsed.
    OSError
        Writing to the store failed.
    """
    root = _normalise_root(root)
    if not isinstance(frames, int | np.integer) or frames < 1:
        raise ValueError(f"frames={frames!r} must be an integer >= 1")
    if not isinstance(corrupt, int | np.integer) or not 0 <= corrupt < frames:
        raise ValueError(
            f"corrupt={corrupt!r} must be an integer in [0, frames) = [0, {frames}); "
            "at least one frame must stay readable"
        )
    if reuse is not None and (not isinstance(reuse, int | np.integer) or reuse < 1):
        raise ValueError(f"reuse={reuse!r} must be None or an integer >= 1")
    if not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers={workers!r} must be an integer >= 1")
    if not isinstance(dataset_id, str) or not _ID_RE.match(dataset_id):
        raise ValueError(
            f"dataset_id={dataset_id!r} may contain only letters, digits, '-' and '_' "
            "(CloudCatalog ids)"
        )
    t0 = parse_time(start, "start")
    step = _timedelta(cadence, "cadence")
    _check_frame_args(size, seed, 1.0, _REF_EXPTIME, 0.001)
    size, seed, frames = int(size), int(seed), int(frames)
    exptime, blank_fraction = _REF_EXPTIME, 0.001

    times = pd.DatetimeIndex([t0 + i * step for i in range(frames)])
    shrink = min(1.0, frames * step / _RUN)
    factors = flare_profile(times, rise=_RISE * shrink, decay=_DECAY * shrink)
    peak_index = int(np.argmax(factors))
    bad = set(_corrupt_indices(frames, int(corrupt), peak_index))

    fs, root_path = filesystem(root, storage_options)
    root_path = root_path.rstrip("/")
    try:
        fs.makedirs(root_path, exist_ok=True)  # creates the bucket on S3
    except OSError as exc:
        raise OSError(
            f"cannot create or open root={root!r} ({exc}); check the name (S3 buckets: 3-63 "
            "lowercase letters, digits, '-' and '.') and that storage_options reach the store"
        ) from exc
    writer = _Writer(fs)
    datakeys = [root + _data_key(t) for t in times]

    groups = _groups(factors, reuse)
    reps = [rep for rep, _ in groups]
    tasks = [(times[r], size, seed, float(factors[r]), exptime, blank_fraction) for r in reps]
    owner = {i: k for k, (_, members) in enumerate(groups) for i in members}

    sizes = [0] * frames
    means = [float("nan")] * frames

    def emit(i: int, raw: bytes, mean: float) -> None:
        if i in bad:
            raw = raw[: len(raw) // 2]
        else:
            means[i] = mean
        sizes[i] = len(raw)
        writer.put(f"{root_path}/{_data_key(times[i])}", raw)

    if reuse is None or reuse >= frames:
        for k, (raw, mean) in _generate(tasks, workers):
            emit(reps[k], raw, mean)
    else:
        rendered = dict(_generate(tasks, workers))
        for i in range(frames):
            k = owner[i]
            raw, mean = rendered[k]
            emit(i, raw if i == reps[k] else _rehead(raw, times[i], size, exptime), mean)

    # Yearly CSV indexes (spec >= 0.5 columns), each row in the year of its start.
    index_prefix = f"{root}sdo/aia/registries/"
    rows: dict[int, list[str]] = {}
    for i, t in enumerate(times):
        rows.setdefault(t.year, []).append(
            f"{_iso_z(t)},{_iso_z(t + step)},{datakeys[i]},{sizes[i]}"
        )
    for year, lines in rows.items():
        text = "# start, stop, datakey, filesize\n" + "\n".join(lines) + "\n"
        writer.put(f"{root_path}/sdo/aia/registries/{dataset_id}_{year}.csv", text.encode())

    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stop = times[-1] + step
    entry = {
        "id": dataset_id,
        "index": index_prefix,
        "title": "AIA 0094 FITS data (synthetic demo)",
        "start": _iso_z(t0, ms=False),
        "stop": _iso_z(stop, ms=False),
        "modification": now,
        "indextype": "csv",
        "filetype": "fits",
        "description": (
            f"Synthetic SDO/AIA 94 Å level-1-like images ({size}x{size}, int16, RICE_1) with a "
            f"flare peaking at {_iso_z(times[peak_index], ms=False)}; {len(bad)} file(s) "
            "deliberately truncated. Made by intake_helio.testing.demo_data; not real data."
        ),
        "multiyear": False,
    }
    catalog = _read_json(fs, f"{root_path}/catalog.json")
    datasets = catalog.get("catalog") if isinstance(catalog, dict) else None
    others = [d for d in (datasets or []) if isinstance(d, Mapping) and d.get("id") != dataset_id]
    catalog = {
        "version": "1.0",
        "name": registry_name,
        "endpoint": root,
        "egress": "none",
        "contact": "intake-helio developers (local demo data)",
        "description": "Synthetic heliophysics data written by intake-helio for demos and tests.",
        "status": {"code": 1200, "message": "OK"},
        "catalog": sorted([*others, entry], key=lambda d: str(d.get("id"))),
    }
    writer.put(f"{root_path}/catalog.json", json.dumps(catalog, indent=2).encode())
    registry = {
        "version": "1.0",
        "modificationDate": now,
        "registry": [
            {"endpoint": root, "name": registry_name, "provider": "local", "region": "local"}
        ],
    }
    writer.put(f"{root_path}/HelioDataRegistry.json", json.dumps(registry, indent=2).encode())

    return DemoDataset(
        root=root,
        registry_url=f"{root}HelioDataRegistry.json",
        dataset_id=dataset_id,
        start=t0,
        stop=stop,
        datakeys=tuple(datakeys),
        corrupt=tuple(datakeys[i] for i in sorted(bad)),
        expected_mean=tuple(means),
    )


def _read_json(fs, path: str) -> Any:
    """An existing JSON file's content, or None if it is missing or not JSON."""
    try:
        return json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None
