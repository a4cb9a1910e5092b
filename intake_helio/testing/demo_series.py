"""A synthetic magnetometer published as a CDF time-series dataset beside the demo's AIA data.

:func:`write_demo_series` writes a run of CDF files (cdflib's writer, through
:func:`~intake_helio.testing.cdf_files.magnetometer_cdf`) of a field that is quiet until the
demo's flare and then follows its shape (:func:`~intake_helio.testing.sun.flare_profile`
with the AIA run's own peak, rise and decay: :func:`~intake_helio.testing.demo_data.flare_timing`),
with a slow wave, deterministic noise and a short data gap (``FILLVAL`` records). It publishes
them with :func:`~intake_helio.testing.series_data.publish_series` in the same bucket and
``catalog.json`` as the AIA channels and returns a :class:`DemoSeries` with the truth: the
mean field magnitude ``|B|`` of every minute, computed from the float32 values written.

The data are synthetic (a real magnetometer would not see a disturbance at the time of a
solar flare): the disturbance follows the flare so that the demo's two panels line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..base.times import parse_time
from .cdf_files import magnetometer_cdf
from .demo_data import DemoDataError, _normalise_root, flare_timing
from .series_data import SeriesFile, publish_series
from .sun import _timedelta, flare_profile

__all__ = ["DemoSeries", "magnitude_minutes", "write_demo_series"]

#: The quiet field in nT (GSE x, y, z): ``|B|`` = 5.59 nT.
QUIET_FIELD = (4.0, -3.0, 2.5)
#: The field's factor at the flare's peak (it multiplies the quiet field).
DISTURBANCE = 3.0
_WAVE_NT, _WAVE_PERIOD_S, _NOISE_NT = 0.6, 600.0, 0.15
_GAP = pd.Timedelta("90s")  # FILLVAL records 15 % into the run (a telemetry gap)


@dataclass(frozen=True)
class DemoSeries:
    """What :func:`write_demo_series` wrote, with the truth to check a reader against.

    Attributes
    ----------
    root : str
        Bucket root endpoint, ending with ``/``.
    dataset_id : str
        Dataset id in ``<root>catalog.json`` (filetype ``cdf``).
    start, stop : pandas.Timestamp
        The records are ``[start, stop)`` every ``cadence`` (naive UTC).
    cadence : pandas.Timedelta
        Time between records.
    datakeys : tuple of str
        URL of every file, in time order.
    gap : tuple of pandas.Timestamp
        ``(first, last)`` record time written as ``FILLVAL`` (empty without a gap).
    flare : tuple
        ``(peak, rise, decay)`` of the disturbance (the AIA run's flare).
    minutes : tuple of pandas.Timestamp
        Start of every minute of the run (records binned by ``time.floor("1min")``).
    mean_b : tuple of float
        Per minute, the mean of ``|B|`` in nT over its records that are not fill (NaN
        where every record of the minute is fill), ``|B|`` computed in float64 from the
        float32 ``B_GSE`` components written.
    """

    root: str
    dataset_id: str
    start: pd.Timestamp
    stop: pd.Timestamp
    cadence: pd.Timedelta
    datakeys: tuple[str, ...]
    gap: tuple[pd.Timestamp, ...]
    flare: tuple[pd.Timestamp, pd.Timedelta, pd.Timedelta]
    minutes: tuple[pd.Timestamp, ...]
    mean_b: tuple[float, ...]

    @property
    def peak_minute(self) -> pd.Timestamp:
        """The minute of the largest mean ``|B|``."""
        return self.minutes[int(np.nanargmax(self.mean_b))]


def _field(times: pd.DatetimeIndex, flare: tuple, seed: int) -> np.ndarray:
    """``(N, 3)`` float64 nT: the quiet field times the flare's factor, a wave and noise."""
    peak, rise, decay = flare
    factor = flare_profile(times, peak=peak, rise=rise, decay=decay, amplitude=DISTURBANCE)
    s = np.asarray((times - times[0]) / pd.Timedelta(1, "s"), dtype=np.float64)
    wave = _WAVE_NT * np.sin(2 * np.pi * s / _WAVE_PERIOD_S)
    noise = np.random.default_rng(seed).normal(0.0, _NOISE_NT, (len(times), 3))
    b = factor[:, None] * np.asarray(QUIET_FIELD)[None, :] + noise
    b[:, 0] += wave
    return b


def magnitude_minutes(times: Any, components: np.ndarray) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """``(minutes, mean |B|)`` of records: ``|B|`` per record in float64, averaged by minute.

    ``components`` is ``(N, 3)``; a record with a NaN component has no ``|B|`` and a minute
    of such records only is NaN. The minutes are ``times.floor("1min")`` (as xarray's
    ``resample(time="1min")`` bins them).

    Parameters
    ----------
    times : sequence of times
        The records' times.
    components : numpy.ndarray
        ``(N, 3)`` field components (NaN for fill).

    Returns
    -------
    (pandas.DatetimeIndex, numpy.ndarray)
        The minutes and each one's mean ``|B|`` (float64).
    """
    index = pd.DatetimeIndex(times)
    b = np.asarray(components, dtype=np.float64)
    magnitude = pd.Series(np.sqrt((b**2).sum(axis=1)), index=index)
    means = magnitude.groupby(index.floor("1min")).mean()
    return pd.DatetimeIndex(means.index), means.to_numpy(dtype=np.float64)


def write_demo_series(
    root: str = "s3://helio-demo/",
    storage_options: dict | None = None,
    *,
    start: Any = "2020-12-31T22:00:00",
    stop: Any = "2021-01-01T01:12:00",
    flare: tuple | None = None,
    cadence: Any = "1s",
    file_length: Any = "30min",
    dataset_id: str = "mag_demo",
    gap: bool = True,
    seed: int = 0,
    registry_name: str = "Local demo (intake-helio)",
) -> DemoSeries:
    """Write a synthetic magnetometer over ``[start, stop)`` as CDF files, and publish it.

    Writes ``mag_demo/<YYYYMMDD>/demo_mag_<cadence>_<YYYYMMDD>T<HHMMSS>_v01.cdf`` files of
    ``file_length`` each (the last one shorter), ISTP-like (``Epoch`` TT2000, ``B_GSE``
    float32 nT with ``DEPEND_1``/``LABL_PTR_1``, ``B_mag``); the yearly indexes
    ``<dataset_id>/registries/<dataset_id>_<YYYY>.csv``; and merges the dataset (filetype
    ``cdf``) into ``<root>catalog.json``, keeping the AIA channels there.

    The field is ``QUIET_FIELD * flare_profile(t, peak, rise, decay, amplitude=3)`` plus a
    0.6 nT wave of period 10 min along x and 0.15 nT Gaussian noise (``seed``); with
    ``gap``, 90 s of records 15 % into the run are ``FILLVAL``.

    Parameters
    ----------
    root : str
        Bucket root URL (``s3://bucket/``, ``memory://name/``, a local path).
    storage_options : dict, optional
        fsspec options of the root.
    start, stop : time
        The run (naive UTC), e.g. a :class:`~intake_helio.testing.demo_data.DemoDataset`'s
        ``start`` and ``stop``.
    flare : tuple, optional
        ``(peak, rise, decay)``, e.g. ``DemoDataset.flare``; default: the flare of a
        48-frame AIA demo run over ``[start, stop)``
        (:func:`~intake_helio.testing.demo_data.flare_timing`).
    cadence : str or pandas.Timedelta
        Time between records (1 s: a 1 Hz magnetometer).
    file_length : str or pandas.Timedelta
        Time covered by each file.
    dataset_id : str
        The dataset's id.
    gap : bool
        Write 90 s of ``FILLVAL`` records (when the run is longer than ten minutes).
    seed : int
        Seed of the noise; the files are deterministic from the arguments.
    registry_name : str
        The bucket's name in the registry.

    Returns
    -------
    DemoSeries

    Raises
    ------
    DemoDataError
        (a ``ValueError``) ``stop`` is not after ``start``, or a cadence or length is not
        positive.
    """
    t0, t1 = parse_time(start, "start"), parse_time(stop, "stop")
    step = _timedelta(cadence, "cadence")
    length = _timedelta(file_length, "file_length")
    if t1 <= t0:
        raise DemoDataError(f"stop={stop!r} must be after start={start!r}")
    flare = tuple(flare) if flare is not None else flare_timing(t0, t1, 48)
    times = pd.DatetimeIndex(pd.date_range(t0, t1, freq=step, inclusive="left"))
    b = _field(times, flare, int(seed))
    fill = np.zeros(len(times), dtype=bool)
    if gap and t1 - t0 > pd.Timedelta("10min"):
        first = t0 + ((t1 - t0) * 0.15).floor("1min") + pd.Timedelta("30s")
        fill = (times >= first) & (times < first + _GAP)
    written = b.astype(np.float32)
    position = {t: i for i, t in enumerate(times.asi8)}

    def signal(t: np.ndarray) -> np.ndarray:
        return b[[position[v] for v in t.astype("datetime64[ns]").astype(np.int64)]]

    files = []
    for a in pd.date_range(t0, t1, freq=length, inclusive="left"):
        z = min(a + length, t1)
        rows = np.flatnonzero((times >= a) & (times < z))
        name = f"demo_mag_{step.total_seconds():g}s_{a:%Y%m%dT%H%M%S}_v01.cdf"
        data = magnetometer_cdf(
            a,
            z,
            step,
            signal=signal,
            fill_records=tuple(int(i) for i in np.flatnonzero(fill[rows])),
        )
        files.append(SeriesFile(f"{dataset_id}/{a:%Y%m%d}/{name}", a, z, data))
    title = f"Synthetic magnetometer, {step.total_seconds():g} s (demo, CDF)"
    description = (
        f"Synthetic magnetometer B_GSE at {step.total_seconds():g} s, quiet field disturbed "
        f"with the demo flare's timing (peak {flare[0]:%Y-%m-%d %H:%M:%S}); "
        "made by intake_helio.testing.demo_series; not real data."
    )
    keys = publish_series(
        root,
        storage_options,
        dataset_id,
        files,
        filetype="cdf",
        title=title,
        description=description,
        registry_name=registry_name,
    )
    truth = np.where(fill[:, None], np.nan, written.astype(np.float64))
    minutes, mean_b = magnitude_minutes(times, truth)
    return DemoSeries(
        root=_normalise_root(root),
        dataset_id=dataset_id,
        start=t0,
        stop=t1,
        cadence=step,
        datakeys=tuple(keys),
        gap=(times[fill][0], times[fill][-1]) if fill.any() else (),
        flare=flare,
        minutes=tuple(minutes),
        mean_b=tuple(float(v) for v in mean_b),
    )
