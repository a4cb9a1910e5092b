"""A synthetic SDO/AIA dataset published as a CloudCatalog, for the demo, tests and benchmarks.

:func:`write_demo_dataset` writes a run of synthetic frames of one AIA channel (94 Å by
default, 171 Å for the demo's second channel; made by :mod:`intake_helio.testing.aia`, with
a flare) through fsspec (local S3, ``memory://``, a local
folder) together with the three CloudCatalog levels, built by
:mod:`intake_helio.catalog.writer`: yearly CSV indexes, a bucket ``catalog.json`` and a registry
JSON. It returns a :class:`DemoDataset` with the truth so that readers can be checked exactly:
each frame's mean in DN and DN/s and its exposure time, and the means in three boxes (the
flaring region, quiet Sun, off the limb).

The data are synthetic: every header carries ``ORIGIN`` and a ``COMMENT`` saying so.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..base.times import parse_time
from ..catalog import writer as catalog_writer
from ..io.transport import filesystem
from .aia import reheader_frame, render_frame
from .errors import DemoDataError, DemoStoreError
from .sun import (
    REF_EXPTIME,
    Box,
    _channel,
    _check_frame_args,
    _timedelta,
    aec_exptime,
    flare_profile,
    frame_boxes,
)

__all__ = ["DemoDataset", "flare_timing", "write_demo_dataset"]

_RISE, _DECAY = pd.Timedelta("20min"), pd.Timedelta("60min")  # flare of the demo run
_RUN = pd.Timedelta("192min")  # default run (48 x 4 min); shorter runs get a shorter flare
_BLANK_FRACTION = 0.001
_INDEX_DIR = "sdo/aia/registries/"
_REGISTRY_FILE = "HelioDataRegistry.json"


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
        Naive UTC; ``stop`` is exclusive (last frame start + cadence), the catalog's range.
        Each index row's ``stop`` is its frame's end of exposure, start + ``EXPTIME``.
    datakeys : tuple of str
        URL of every frame, in time order.
    corrupt : tuple of str
        The datakeys written truncated (unreadable).
    expected_mean : tuple of float
        Per frame, the float64 nanmean of the float32 image astropy reads (NaN if corrupt),
        in DN.
    wavelength : int
        The AIA channel in Å (``WAVELNTH`` of every frame).
    exptime : tuple of float
        Per frame, its ``EXPTIME`` in s (:func:`~intake_helio.testing.aia.aec_exptime`:
        nominal, shorter in steps during the flare).
    flare_factor : tuple of float
        Per frame, the brightness factor of the flaring region
        (:func:`~intake_helio.testing.aia.flare_profile`; with ``reuse``, its group's).
    boxes : tuple of Box
        The ``flare``, ``quiet`` and ``corner`` boxes of
        :func:`~intake_helio.testing.aia.frame_boxes` (pixels; :meth:`box` by name).
    box_means : tuple of tuple of float
        Per box (in the order of ``boxes``), per frame, the mean of its good pixels in DN
        (NaN if corrupt); :meth:`box_mean` and :meth:`box_rate` by name.
    """

    root: str
    registry_url: str
    dataset_id: str
    start: pd.Timestamp
    stop: pd.Timestamp
    datakeys: tuple[str, ...]
    corrupt: tuple[str, ...]
    expected_mean: tuple[float, ...]
    wavelength: int = 94
    exptime: tuple[float, ...] = ()
    flare_factor: tuple[float, ...] = ()
    boxes: tuple[Box, ...] = ()
    box_means: tuple[tuple[float, ...], ...] = ()

    @property
    def expected_rate(self) -> tuple[float, ...]:
        """Per frame, the true mean in DN/s: ``expected_mean / exptime`` (NaN if corrupt)."""
        return tuple(m / e for m, e in zip(self.expected_mean, self.exptime, strict=True))

    def box(self, name: str) -> Box:
        """The box called ``name`` (``"flare"``, ``"quiet"`` or ``"corner"``)."""
        for box in self.boxes:
            if box.name == name:
                return box
        raise KeyError(f"no box {name!r}; the boxes are {[b.name for b in self.boxes]}")

    def box_mean(self, name: str) -> np.ndarray:
        """Per frame, the true mean in DN of the good pixels in the box ``name``."""
        return np.array(self.box_means[self.boxes.index(self.box(name))], dtype=np.float64)

    def box_rate(self, name: str) -> np.ndarray:
        """Per frame, the true mean in DN/s of the box ``name``: :meth:`box_mean` / exptime."""
        return self.box_mean(name) / np.array(self.exptime, dtype=np.float64)

    @property
    def flare(self) -> tuple[pd.Timestamp, pd.Timedelta, pd.Timedelta]:
        """The flare's ``(peak, rise, decay)``, as :func:`flare_timing` of this run."""
        return flare_timing(self.start, self.stop, len(self.datakeys))

    @property
    def catalog_url(self) -> str:
        """URL of the bucket catalog, ``<root>catalog.json``."""
        return f"{self.root}catalog.json"

    @property
    def times(self) -> pd.DatetimeIndex:
        """Start time of every frame (``start + i * cadence``)."""
        return pd.date_range(self.start, self.stop, periods=len(self.datakeys) + 1)[:-1]


def flare_timing(
    start: Any, stop: Any, frames: int
) -> tuple[pd.Timestamp, pd.Timedelta, pd.Timedelta]:
    """``(peak, rise, decay)`` of the flare of a demo run of ``frames`` over ``[start, stop)``.

    The peak is 40 % of the way from the first to the last frame's start; rise and decay
    are 20 and 60 min, shortened in proportion for runs shorter than 192 min. Other demo
    data (:mod:`intake_helio.testing.demo_series`) follow the same flare with it.

    Parameters
    ----------
    start, stop : time-like
        The run: its first frame's start and its ``stop`` (last start + cadence).
    frames : int
        Its number of frames.

    Returns
    -------
    tuple of (pandas.Timestamp, pandas.Timedelta, pandas.Timedelta)
        For :func:`~intake_helio.testing.sun.flare_profile`'s ``peak``, ``rise``, ``decay``.
    """
    t0, t1 = pd.Timestamp(start), pd.Timestamp(stop)
    step = (t1 - t0) / int(frames)
    shrink = min(1.0, (t1 - t0) / _RUN)
    return t0 + 0.4 * (t1 - step - t0), _RISE * shrink, _DECAY * shrink


def _data_key(t: pd.Timestamp, wavelength: int = 94) -> str:
    return (
        f"sdo/aia/{t:%Y%m%d}/{wavelength:04d}/aia_lev1_{wavelength}a_{t:%Y_%m_%d}t"
        f"{t:%H_%M_%S}_{t.microsecond // 10000:02d}z_image_lev1.fits"
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
        raise DemoDataError(f"root={root!r} must be a URL such as 's3://helio-demo/'")
    if "://" not in root:
        root = Path(root).expanduser().resolve().as_uri()
    return root if root.endswith("/") else root + "/"


def _generate(tasks: list[tuple], workers: int) -> Iterator[tuple[int, tuple]]:
    """Yield ``(task index, render_frame(*task))`` in order, with at most 2 * workers in flight.

    Threads, not processes: numpy's random generators and array maths and the RICE compressor
    release the GIL, so threads scale on the heavy part (about 1.6x with 2 workers on 2 cores)
    without pickling 14 MB results or re-importing the caller's ``__main__`` in child processes.
    """
    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            yield i, render_frame(*task)
        return
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="demo-frame"
    ) as pool:
        pending: dict[int, concurrent.futures.Future] = {}
        nxt = 0
        try:
            for i in range(len(tasks)):
                while nxt < len(tasks) and len(pending) < 2 * workers:
                    pending[nxt] = pool.submit(render_frame, *tasks[nxt])
                    nxt += 1
                yield i, pending.pop(i).result()
        finally:
            for future in pending.values():
                future.cancel()


class _Writer:
    """Write whole objects under one root through its fsspec filesystem.

    Objects are named by URL (``root`` + key); parent folders are created once each.
    """

    def __init__(self, fs, root: str, root_path: str):
        self.fs = fs
        self.root = root
        self.root_path = root_path
        self._made: set[str] = set()

    def path(self, url: str) -> str:
        """The filesystem path of ``url``, which must lie under ``root``."""
        if not url.startswith(self.root):  # pragma: no cover - defensive
            raise DemoDataError(f"{url!r} is not under the root {self.root!r}")
        return f"{self.root_path}/{url[len(self.root) :]}"

    def put(self, url: str, data: bytes) -> None:
        path = self.path(url)
        parent = self.fs._parent(path)
        if parent not in self._made:
            self.fs.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        self.fs.pipe_file(path, data)

    def read_json(self, url: str) -> Any:
        """An existing JSON file's content, or None if it is missing or not JSON."""
        try:
            return json.loads(self.fs.cat_file(self.path(url)))
        except (FileNotFoundError, ValueError):
            return None


def _writer(root: str, storage_options: dict | None) -> _Writer:
    """A writer under ``root`` (normalised), its bucket or folder created."""
    fs, root_path = filesystem(root, storage_options)
    root_path = root_path.rstrip("/")
    try:
        fs.makedirs(root_path, exist_ok=True)  # creates the bucket on S3
    except OSError as exc:
        raise DemoStoreError(
            f"cannot create or open root={root!r} ({exc}); check the name (S3 buckets: 3-63 "
            "lowercase letters, digits, '-' and '.') and that storage_options reach the store"
        ) from exc
    return _Writer(fs, root, root_path)


def write_demo_dataset(
    root: str = "s3://helio-demo/",
    storage_options: dict | None = None,
    *,
    frames: int = 48,
    size: int = 256,
    start: Any = "2020-12-31T22:00:00",
    cadence: Any = "4min",
    dataset_id: str | None = None,
    corrupt: int = 1,
    seed: int = 0,
    registry_name: str = "Local demo (intake-helio)",
    reuse: int | None = None,
    workers: int = 1,
    wavelength: int = 94,
) -> DemoDataset:
    """Write a synthetic AIA run of one channel with a flare, and publish it as a CloudCatalog.

    Writes, under ``root``:

    - data files
      ``sdo/aia/<YYYYMMDD>/<WWWW>/aia_lev1_<W>a_<YYYY_MM_DD>t<HH_MM_SS>_00z_image_lev1.fits``
      (``<W>`` the wavelength, ``<WWWW>`` on 4 digits: ``0094/aia_lev1_94a_...``; see
      :func:`~intake_helio.testing.aia.make_aia_frame`) with
      ``intensity = flare_profile(times, rise=..., decay=..., amplitude=...)``, the flaring
      active region's brightness, peaking 40 % into the run (amplitude 4 at 94 Å, 1.6 at
      171 Å; the quiet Sun and the corona stay constant); rise and decay are 20 and 60 min,
      shortened in proportion for runs shorter than the default 192 min so that the flare is
      always visible; each frame's ``EXPTIME`` is
      ``aec_exptime(wavelength, intensity)`` (2.9 s at 94 Å, shortened in steps down to
      0.87 s during the flare), its counts proportional to it;
    - yearly indexes ``sdo/aia/registries/<dataset_id>_<YYYY>.csv`` with the header
      ``# start, stop, datakey, filesize`` (each row in the year of its start; ``stop`` is
      the end of the frame's exposure, its start + ``EXPTIME``);
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
        Time between frames (the dataset's ``stop`` is the last start + cadence).
    dataset_id : str, optional
        Dataset id (letters, digits, ``-``, ``_``); default ``aia_<WWWW>`` (``aia_0094``).
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
        pixels, compressed tiles and exposure time of one member; headers and times stay per
        frame. Makes many full-size frames fast to write; the flare becomes a staircase.
    workers : int
        Threads that generate and compress frames in parallel (1 = none).
    wavelength : int
        The AIA channel in Å (94, 131, 171, 193, 211, 304 or 335): the headers' ``WAVELNTH``,
        ``WAVE_STR`` and ``INSTRUME``, the files' paths, the dataset's title and the
        brightness (in DN/s, the 171 Å disk is 1.8 times the 94 Å one) and the exposure
        (2.9 s at 94 Å, 2 s at 171 Å before the flare). The demo's two channels are
        ``write_demo_dataset(..., wavelength=94)`` and, 3 s later,
        ``write_demo_dataset(..., wavelength=171, start=start + 3 s)``.

    Returns
    -------
    DemoDataset

    Raises
    ------
    DemoDataError
        (a ``ValueError``) An argument is out of range, or ``wavelength`` is not an AIA EUV
        channel.
    CatalogFormatError
        (a ``ValueError``) ``dataset_id`` is not a CloudCatalog id.
    TimeRangeError
        ``start`` cannot be parsed.
    DemoStoreError
        (an ``OSError``) ``root`` cannot be created or opened.
    OSError
        Writing to the store failed.
    """
    root = _normalise_root(root)
    _check_counts(frames, corrupt, reuse, workers)
    amplitude = _channel(wavelength)[3]
    wavelength = int(wavelength)
    if dataset_id is None:
        dataset_id = f"aia_{wavelength:04d}"
    catalog_writer.check_dataset_id(dataset_id)
    t0 = parse_time(start, "start")
    step = _timedelta(cadence, "cadence")
    _check_frame_args(size, seed, 1.0, REF_EXPTIME, _BLANK_FRACTION)
    size, seed, frames = int(size), int(seed), int(frames)
    blank_fraction = _BLANK_FRACTION

    times = pd.DatetimeIndex([t0 + i * step for i in range(frames)])
    peak, rise, decay = flare_timing(t0, times[-1] + step, frames)
    factors = flare_profile(times, peak=peak, rise=rise, decay=decay, amplitude=amplitude)
    peak_index = int(np.argmax(factors))
    bad = set(_corrupt_indices(frames, int(corrupt), peak_index))
    boxes = tuple(frame_boxes(t0, size).values())

    writer = _writer(root, storage_options)
    datakeys = [root + _data_key(t, wavelength) for t in times]

    groups = _groups(factors, reuse)
    reps = [rep for rep, _ in groups]
    owner = {i: k for k, (_, members) in enumerate(groups) for i in members}
    # a frame shares its group's pixels, so its flare factor and exposure too
    factor = np.array([factors[reps[owner[i]]] for i in range(frames)], dtype=np.float64)
    exptimes = np.asarray(aec_exptime(wavelength, factor), dtype=np.float64).reshape(frames)
    tasks = [
        (
            times[r],
            size,
            seed,
            float(factors[r]),
            float(exptimes[r]),
            blank_fraction,
            wavelength,
            boxes,
        )
        for r in reps
    ]

    sizes = [0] * frames
    means = [float("nan")] * frames
    box_means = [[float("nan")] * frames for _ in boxes]

    def emit(i: int, raw: bytes, mean: float, in_boxes: tuple[float, ...]) -> None:
        if i in bad:
            raw = raw[: len(raw) // 2]
        else:
            means[i] = mean
            for b, value in enumerate(in_boxes):
                box_means[b][i] = value
        sizes[i] = len(raw)
        writer.put(datakeys[i], raw)

    if reuse is None or reuse >= frames:
        for k, (raw, mean, in_boxes) in _generate(tasks, workers):
            emit(reps[k], raw, mean, in_boxes)
    else:
        rendered = dict(_generate(tasks, workers))
        for i in range(frames):
            k = owner[i]
            raw, mean, in_boxes = rendered[k]
            if i != reps[k]:
                raw = reheader_frame(raw, times[i], size, float(exptimes[i]))
            emit(i, raw, mean, in_boxes)

    stop = times[-1] + step
    rows = [
        (t, t + pd.Timedelta(float(exptimes[i]), "s"), datakeys[i], sizes[i])
        for i, t in enumerate(times)
    ]
    description = (
        f"Synthetic SDO/AIA {wavelength} Å level-1-like images ({size}x{size}, int16, RICE_1) "
        "with a "
        f"flare peaking at {catalog_writer.iso_time(times[peak_index])}; {len(bad)} file(s) "
        "deliberately truncated. Made by intake_helio.testing.demo_data; not real data."
    )
    title = f"AIA {wavelength:04d} FITS data (synthetic demo)"
    _publish(writer, dataset_id, t0, stop, rows, description, registry_name, title)

    return DemoDataset(
        root=root,
        registry_url=f"{root}{_REGISTRY_FILE}",
        dataset_id=dataset_id,
        start=t0,
        stop=stop,
        datakeys=tuple(datakeys),
        corrupt=tuple(datakeys[i] for i in sorted(bad)),
        expected_mean=tuple(means),
        wavelength=wavelength,
        exptime=tuple(float(e) for e in exptimes),
        flare_factor=tuple(float(f) for f in factor),
        boxes=boxes,
        box_means=tuple(tuple(b) for b in box_means),
    )


def _check_counts(frames: Any, corrupt: Any, reuse: Any, workers: Any) -> None:
    if not isinstance(frames, int | np.integer) or frames < 1:
        raise DemoDataError(f"frames={frames!r} must be an integer >= 1")
    if not isinstance(corrupt, int | np.integer) or not 0 <= corrupt < frames:
        raise DemoDataError(
            f"corrupt={corrupt!r} must be an integer in [0, frames) = [0, {frames}); "
            "at least one frame must stay readable"
        )
    if reuse is not None and (not isinstance(reuse, int | np.integer) or reuse < 1):
        raise DemoDataError(f"reuse={reuse!r} must be None or an integer >= 1")
    if not isinstance(workers, int | np.integer) or workers < 1:
        raise DemoDataError(f"workers={workers!r} must be an integer >= 1")


def _publish(
    writer: _Writer,
    dataset_id: str,
    start: pd.Timestamp,
    stop: pd.Timestamp,
    rows: list[tuple],
    description: str,
    registry_name: str,
    title: str = "AIA 0094 FITS data (synthetic demo)",
    filetype: str = "fits",
    index_dir: str = _INDEX_DIR,
) -> None:
    """Write the yearly indexes, merge the dataset into ``catalog.json``, write the registry."""
    root = writer.root
    index = f"{root}{index_dir}"
    for url, text in catalog_writer.yearly_index_files(index, dataset_id, rows).items():
        writer.put(url, text.encode())

    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = catalog_writer.dataset_entry(
        dataset_id,
        index=index,
        title=title,
        start=start,
        stop=stop,
        description=description,
        modification=now,
        filetype=filetype,
    )
    catalog = catalog_writer.bucket_catalog(
        root,
        [entry],
        name=registry_name,
        contact="intake-helio developers (local demo data)",
        description="Synthetic heliophysics data written by intake-helio for demos and tests.",
        existing=writer.read_json(f"{root}catalog.json"),
    )
    writer.put(f"{root}catalog.json", json.dumps(catalog, indent=2).encode())
    registry = catalog_writer.registry_json(
        [{"endpoint": root, "name": registry_name, "provider": "local", "region": "local"}],
        modification=now,
    )
    writer.put(f"{root}{_REGISTRY_FILE}", json.dumps(registry, indent=2).encode())
