"""The embedded demo: local S3 + synthetic AIA 94 and 171 Å data + the irradiance job.

No cloud account: everything goes through the public code path used for real data: the
registry JSON -> the bucket's ``catalog.json`` -> yearly indexes -> two channels on one time
axis (``ih.open_channels``; the 171 Å frames are 3 s after the 94 Å ones) -> per-frame means,
saved as ``(channel, time)`` results and a PNG with one line per channel. A synthetic
magnetometer (CDF files written with cdflib, ``mag_demo`` in the same ``catalog.json``) is
opened through the catalog as a time series (``to_dataset``), its ``|B|`` checked against
the generator's truth and drawn in a second panel of the PNG, under the irradiance.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import dask
import numpy as np
import pandas as pd
import xarray as xr

from ..base.options import TOLERANCE
from ..catalog.registry import open_registry
from ..testing.demo_data import DemoDataset, write_demo_dataset
from ..testing.demo_series import DemoSeries, write_demo_series
from ..testing.local_s3 import LocalS3
from .job import JobSummary, run_irradiance_job
from .outdir import atomic_write

__all__ = [
    "DemoReport",
    "check_against_truth",
    "check_magnetometer",
    "check_regions",
    "describe_magnetometer",
    "describe_regions",
    "magnetometer_curve",
    "region_curves",
    "run_demo",
    "serve_demo",
    "write_demo_channels",
]

DEMO_ROOT = "s3://helio-demo/"
DEMO_NAME = "Local demo (intake-helio)"
#: The demo's channels: (wavelength in Å, start after the first channel's frames).
DEMO_CHANNELS: tuple[tuple[int, pd.Timedelta], ...] = (
    (94, pd.Timedelta(0)),
    (171, pd.Timedelta(seconds=3)),
)


@dataclass
class DemoReport:
    """What the demo did and whether its values match the generator's truth.

    Attributes
    ----------
    data : DemoDataset
        The first channel (AIA 94 Å) as written.
    summary : JobSummary
        What the irradiance job did (frames of every channel).
    max_rel_error : float
        Largest relative difference of a value from the generator's true mean, over every
        channel (``inf`` if a readable frame has no value).
    failed_as_expected : bool
        Whether the failed frames are exactly the deliberately corrupt files of every channel.
    channels : tuple of DemoDataset
        Every channel as written, in the job's channel order.
    result : xarray.Dataset, optional
        The job's ``(channel, time)`` result, as saved.
    regions : xarray.Dataset, optional
        The first channel's light curves in DN/s of the whole disk, the flaring region's box
        and a quiet-Sun box (``(region, time)``; :func:`region_curves`).
    regions_rel_error : float
        Largest relative difference of a region's value from the generator's truth.
    region_files : dict of str to str
        ``regions.csv`` and ``regions.png`` as written (``{"csv": path, "png": path}``).
    series : DemoSeries, optional
        The synthetic magnetometer (CDF) as written, with its truth.
    magnetometer : xarray.Dataset, optional
        Its ``|B|`` read through the catalog (:func:`magnetometer_curve`): the second
        panel of ``irradiance.png``.
    magnetometer_rel_error : float
        Largest relative difference of a minute's mean ``|B|`` from the generator's truth
        (``inf`` if the minutes, the gap or a file's status differ;
        :func:`check_magnetometer`).
    magnetometer_files : dict of str to str
        ``magnetometer.csv`` as written (``{"csv": path}``).
    """

    data: DemoDataset
    summary: JobSummary
    max_rel_error: float
    failed_as_expected: bool
    channels: tuple[DemoDataset, ...] = ()
    result: xr.Dataset | None = field(default=None, repr=False)
    regions: xr.Dataset | None = field(default=None, repr=False)
    regions_rel_error: float = 0.0
    region_files: dict[str, str] = field(default_factory=dict)
    series: DemoSeries | None = None
    magnetometer: xr.Dataset | None = field(default=None, repr=False)
    magnetometer_rel_error: float = 0.0
    magnetometer_files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.failed_as_expected
            and self.max_rel_error < 1e-5
            and self.regions_rel_error < 1e-5
            and self.magnetometer_rel_error < 1e-5
        )


def run_demo(
    out: str = "demo-output",
    frames: int = 48,
    size: int = 256,
    cluster_kind: str | None = "local",
    cluster_kwargs: dict | None = None,
    progress: bool = True,
    log=print,
) -> DemoReport:
    """Start a local S3 endpoint, publish the synthetic channels in it and run the job on them.

    Writes AIA 94 Å and 171 Å datasets (``aia_0094``, ``aia_0171``; the 171 Å frames 3 s
    after the 94 Å ones, one corrupt file each) and a 1 Hz magnetometer over the same run
    (``mag_demo``, 30-min CDF files, disturbed with the flare's timing) and runs the
    irradiance job on both channels (``tolerance="6s"``): ``<out>/irradiance.csv`` (long
    form), ``.nc`` (``(channel, time)``) and ``.png`` (one line per channel; under it a
    second panel with the magnetometer's ``|B|``, read through the catalog, each second and
    each minute's mean, also in ``magnetometer.csv``). The report compares every value with
    the generator's truth and the failed frames with the corrupt files.

    With ``cluster_kind="gateway"`` and no gateway address (neither in ``cluster_kwargs``
    nor in dask config ``gateway.address``), a local dask-gateway server on 127.0.0.1 is
    started for the run and stopped afterwards.
    """
    with contextlib.ExitStack() as stack:
        cluster_kwargs = dict(cluster_kwargs or {})
        if cluster_kind == "gateway" and not (
            cluster_kwargs.get("address") or dask.config.get("gateway.address", None)
        ):
            from ..testing.gateway_server import LocalGateway

            gw = stack.enter_context(LocalGateway())
            log(f"local dask-gateway server on {gw.address} (no gateway.address configured)")
            cluster_kwargs.update(address=gw.address, proxy_address=gw.proxy_address, auth=gw.auth)
        return _run_demo(out, frames, size, cluster_kind, cluster_kwargs, progress, log)


def write_demo_channels(storage_options, frames: int, size: int) -> tuple[DemoDataset, ...]:
    """Write the demo's channels (:data:`DEMO_CHANNELS`) into :data:`DEMO_ROOT`.

    Every channel has the same seed (so the same active regions), the same number of
    frames and one deliberately corrupt file.
    """
    first = write_demo_dataset(
        DEMO_ROOT, storage_options, frames=frames, size=size, registry_name=DEMO_NAME
    )
    written = [first]
    for wavelength, offset in DEMO_CHANNELS[1:]:
        written.append(
            write_demo_dataset(
                DEMO_ROOT,
                storage_options,
                frames=frames,
                size=size,
                start=first.start + offset,
                registry_name=DEMO_NAME,
                wavelength=wavelength,
            )
        )
    return tuple(written)


def check_against_truth(
    result: xr.Dataset, channels: tuple[DemoDataset, ...]
) -> tuple[float, bool]:
    """``(max relative error, failed frames == corrupt files)`` of a ``(channel, time)`` result.

    Each value is compared with the generator's true mean of the file in its ``datakey``, in
    the result's units: ``expected_rate`` (each frame's mean / its own ``EXPTIME``, which
    shortens during the flare) for ``"DN/s"``, ``expected_mean`` for ``"DN"`` (the default
    when the result says none); every frame must be a file of the generator (none missing
    within the tolerance).
    """
    units = result["irradiance"].attrs.get("units") or "DN"
    truth = {
        k: m
        for d in channels
        for k, m in zip(
            d.datakeys, d.expected_rate if units == "DN/s" else d.expected_mean, strict=True
        )
    }
    keys = result["datakey"].transpose("channel", "time").to_numpy().astype(str).ravel()
    values = result["irradiance"].transpose("channel", "time").to_numpy().ravel()
    status = result["status"].transpose("channel", "time").to_numpy().astype(str).ravel()
    if not set(keys) <= set(truth):
        return float("inf"), False
    max_rel = _max_rel_error(values, np.array([truth[k] for k in keys], dtype=np.float64))
    failed = set(keys[status != "ok"].tolist())
    corrupt = {k for d in channels for k in d.corrupt}
    return max_rel, failed == corrupt


def _run_demo(out, frames, size, cluster_kind, cluster_kwargs, progress, log) -> DemoReport:
    with LocalS3(process=True) as s3:
        log(f"local S3 endpoint (moto) on {s3.endpoint_url}")
        t0 = time.perf_counter()
        channels = write_demo_channels(s3.storage_options, frames, size)
        data = channels[0]
        waves = " and ".join(str(d.wavelength) for d in channels)
        log(
            f"wrote {len(channels)} x {len(data.datakeys)} synthetic AIA {waves} Å frames of "
            f"{size}x{size} ({data.start:%Y-%m-%d %H:%M} to {data.stop:%Y-%m-%d %H:%M}) in "
            f"{time.perf_counter() - t0:.1f} s, with catalog.json, yearly indexes and "
            f"registry {data.registry_url}"
        )
        t0 = time.perf_counter()
        series = write_demo_series(
            DEMO_ROOT,
            s3.storage_options,
            start=data.start,
            stop=data.stop,
            flare=data.flare,
            registry_name=DEMO_NAME,
        )
        log(
            f"wrote {len(series.datakeys)} CDF files (cdflib) of a synthetic magnetometer "
            f"every {series.cadence.total_seconds():g} s ({series.dataset_id}, disturbed with "
            f"the flare) in {time.perf_counter() - t0:.1f} s"
        )
        registry = open_registry(data.registry_url, s3.storage_options)
        endpoint = registry.endpoint(DEMO_NAME)
        result, summary = run_irradiance_job(
            endpoint,
            [d.dataset_id for d in channels],
            data.start,
            data.stop,
            out,
            storage_options=s3.storage_options,
            cluster_kind=cluster_kind,
            cluster_kwargs=cluster_kwargs,
            progress=progress,
            tolerance=TOLERANCE,
            plot=False,  # the demo's PNG has the magnetometer too: saved below
        )
        regions = region_curves(endpoint, data, s3.storage_options, result)
        mag = magnetometer_curve(endpoint, series, s3.storage_options)
    max_rel, as_expected = check_against_truth(result, channels)
    regions_rel = check_regions(regions, data)
    paths = save_regions(regions, out)
    summary.paths["png"] = save_irradiance_png(result, mag, out)
    return DemoReport(
        data,
        summary,
        max_rel,
        as_expected,
        channels,
        result,
        regions,
        regions_rel,
        paths,
        series=series,
        magnetometer=mag,
        magnetometer_rel_error=check_magnetometer(mag, series),
        magnetometer_files=save_magnetometer(mag, out),
    )


#: The demo's regions: the whole frame (from the job) and two of the generator's boxes.
REGIONS = (("whole frame", None), ("flare box", "flare"), ("quiet Sun box", "quiet"))


def region_curves(
    endpoint: str, data: DemoDataset, storage_options: dict, result: xr.Dataset
) -> xr.Dataset:
    """Light curves in DN/s of the whole frame, the flaring region and quiet Sun.

    The whole frame is the job's first channel; each box is a pixel cutout read through the
    library (``to_dataarray(cutout=...)`` then ``ih.irradiance(..., normalize=True)``),
    so that the demo shows what a cutout does: the flare box rises by about the channel's
    flare amplitude while quiet Sun stays flat, and the whole frame by much less.
    """
    from ..catalog.registry import open_bucket
    from ..compute.reduction import irradiance

    dataset = open_bucket(endpoint, storage_options)[data.dataset_id]
    first = result.isel(channel=0).drop_vars("channel")
    curves = [first["irradiance"].to_numpy()]
    for _, box in REGIONS[1:]:
        frames = dataset.to_dataarray(
            data.start, data.stop, cutout=data.box(box).cutout, on_error="nan"
        )
        with dask.config.set(scheduler="threads"):
            part = irradiance(frames, normalize=True, progress=False)
        curves.append(part["irradiance"].to_numpy())
    boxes = {name: data.box(box) for name, box in REGIONS if box}
    return xr.Dataset(
        {
            "irradiance": (
                ("region", "time"),
                np.stack(curves),
                {"long_name": "mean intensity of the region", "units": "DN/s"},
            ),
            "status": first["status"],
        },
        coords={"region": [name for name, _ in REGIONS], "time": first["time"].to_numpy()},
        attrs={
            "dataset": data.dataset_id,
            "title": f"AIA {data.wavelength} \N{ANGSTROM SIGN} (synthetic demo)",
            **{
                f"{name} (pixels)": f"y {b.y0}:{b.y1}, x {b.x0}:{b.x1}" for name, b in boxes.items()
            },
        },
    )


def check_regions(regions: xr.Dataset, data: DemoDataset) -> float:
    """Largest relative difference of the region curves from the generator's truth."""
    truth = [np.asarray(data.expected_rate)] + [data.box_rate(box) for _, box in REGIONS[1:]]
    got = regions["irradiance"].to_numpy()
    return max(_max_rel_error(v, t) for v, t in zip(got, truth, strict=True))


def _max_rel_error(values: np.ndarray, expected: np.ndarray) -> float:
    """Largest relative difference where the truth has a value (``inf`` if one is NaN)."""
    good = ~np.isnan(expected)
    if np.isnan(values[good]).any():
        return float("inf")
    rel = np.abs(values[good] - expected[good]) / np.abs(expected[good])
    return float(rel.max()) if rel.size else 0.0


def describe_regions(regions: xr.Dataset) -> str:
    """One line: each region's peak over its first value (``flare box: x3.7``)."""
    values = regions["irradiance"].to_numpy()
    parts = [
        f"{name} x{np.nanmax(v) / v[0]:.2f}"
        for name, v in zip(regions["region"].to_numpy().astype(str), values, strict=True)
    ]
    return f"{regions.attrs['dataset']} in DN/s, peak / first frame: " + ", ".join(parts)


def save_regions(regions: xr.Dataset, out: str) -> dict[str, str]:
    """``regions.csv`` and ``regions.png`` (if matplotlib is there) in ``out``."""
    import os

    from .plots import plot_regions

    paths = {"csv": os.path.join(out, "regions.csv")}
    table = regions["irradiance"].to_pandas().T
    table.insert(len(table.columns), "status", regions["status"].to_numpy())
    table.insert(len(table.columns), "units", "DN/s")
    table.to_csv(paths["csv"], index_label="time")
    with contextlib.suppress(ImportError):
        png = os.path.join(out, "regions.png")
        plot_regions(regions, png)
        paths["png"] = png
    return paths


def magnetometer_curve(endpoint: str, series: DemoSeries, storage_options: dict) -> xr.Dataset:
    """The demo magnetometer's ``|B|``, read through the catalog as a user would.

    ``open_bucket(endpoint)[id].to_dataset(start, stop, variables=["B_GSE"])`` (lazy, one
    read task per CDF file), then with xarray: ``|B|`` of each record from its three
    components (NaN where the file has ``FILLVAL``) and its mean over each minute
    (``resample(time="1min")``), computed with dask's threads.

    Returns
    -------
    xarray.Dataset
        ``B`` along ``time`` (each record), ``B_minute`` along ``minute`` (each minute's
        mean), both in nT, and ``file_status`` along ``file`` (``"ok"`` for every file).
    """
    from ..catalog.registry import open_bucket

    dataset = open_bucket(endpoint, storage_options)[series.dataset_id]
    ds = dataset.to_dataset(series.start, series.stop, variables=["B_GSE"])
    b = ds["B_GSE"].astype(np.float64)
    magnitude = np.sqrt((b**2).sum(b.dims[1], skipna=False))  # a fill record stays NaN
    minute = magnitude.resample(time="1min").mean()
    with dask.config.set(scheduler="threads"):
        magnitude, minute, status = dask.compute(magnitude, minute, ds["file_status"])
    step = f"{series.cadence.total_seconds():g} s"
    title = f"{series.dataset_id}: {dataset.title}, read with to_dataset (|B| of B_GSE)"
    common = {"units": "nT", "axis_label": "|B|", "title": title}
    return xr.Dataset(
        {
            "B": ("time", magnitude.to_numpy(), {**common, "long_name": f"|B| every {step}"}),
            "B_minute": (
                "minute",
                minute.to_numpy(),
                {**common, "long_name": "|B|, mean of each minute"},
            ),
            "file_status": ("file", status.to_numpy().astype(str)),
        },
        coords={
            "time": magnitude["time"].to_numpy(),
            "minute": minute["time"].to_numpy(),
            "datakey": ("file", status["datakey"].to_numpy().astype(str)),
        },
        attrs={"dataset": series.dataset_id, "title": title},
    )


def check_magnetometer(mag: xr.Dataset, series: DemoSeries) -> float:
    """Largest relative difference of each minute's mean ``|B|`` from the generator's truth.

    ``inf`` if the minutes differ from the truth's, if a minute is NaN (the data gap) in
    one and not the other, or if a file's status is not ``"ok"``.
    """
    truth = np.asarray(series.mean_b, dtype=np.float64)
    minutes = mag["minute"].to_numpy()
    expected = np.array(series.minutes, dtype="datetime64[ns]")
    got = mag["B_minute"].to_numpy().astype(np.float64)
    if minutes.shape != expected.shape or (minutes != expected).any():
        return float("inf")
    if not np.array_equal(np.isnan(got), np.isnan(truth)):
        return float("inf")
    if (mag["file_status"].to_numpy().astype(str) != "ok").any():
        return float("inf")
    return _max_rel_error(got, truth)


def describe_magnetometer(mag: xr.Dataset) -> str:
    """One line: the files read, the quiet and peak minute means of ``|B|``, the gap."""
    minute = mag["B_minute"]
    peak = pd.Timestamp(minute["minute"].to_numpy()[int(np.nanargmax(minute.to_numpy()))])
    gaps = int(np.isnan(minute.to_numpy()).sum())
    return (
        f"{mag.attrs['dataset']}: {mag.sizes['file']} CDF files, {mag.sizes['time']} records "
        f"through the catalog; |B| per minute {float(minute[0]):.2f} nT at the start, peak "
        f"{float(minute.max()):.2f} nT at {peak:%H:%M}, {gaps} minute(s) of fill (data gap)"
    )


def save_magnetometer(mag: xr.Dataset, out: str) -> dict[str, str]:
    """``magnetometer.csv`` in ``out``: each minute's mean ``|B|`` (nT)."""
    import os

    path = os.path.join(out, "magnetometer.csv")
    table = mag["B_minute"].to_pandas().rename("B_mean").to_frame()
    table.insert(len(table.columns), "units", "nT")
    atomic_write(path, lambda p: table.to_csv(p, index_label="time"))
    return {"csv": path}


def save_irradiance_png(result: xr.Dataset, mag: xr.Dataset, out: str) -> str:
    """``irradiance.png``: the channels' irradiance, the magnetometer's ``|B|`` under it."""
    import os

    from .plots import plot_irradiance

    path = os.path.join(out, "irradiance.png")
    atomic_write(path, lambda p: plot_irradiance(result, p, series=[mag["B"], mag["B_minute"]]))
    return path


def serve_demo(frames: int = 48, size: int = 256, port: int = 0, log=print) -> None:
    """Keep a local S3 endpoint with the demo dataset running until Ctrl-C."""
    with LocalS3(process=True, port=port) as s3:
        channels = write_demo_channels(s3.storage_options, frames, size)
        data = channels[0]
        ids = [d.dataset_id for d in channels]
        so = s3.storage_options
        log(
            f"Local S3 endpoint with the demo datasets: {s3.endpoint_url}\n"
            f"  bucket {DEMO_ROOT}  datasets {', '.join(ids)}  "
            f"{data.start.isoformat()} .. {data.stop.isoformat()}\n\n"
            "From Python:\n"
            "  import intake_helio as ih\n"
            f"  so = {{'endpoint_url': '{so['endpoint_url']}', 'key': '{so['key']}', "
            "'secret': '<the demo secret>'}\n"
            f"  bucket = ih.open_bucket('{DEMO_ROOT}', storage_options=so)\n"
            f"  frames = bucket['{data.dataset_id}'].to_dataarray()\n"
            f"  chans = ih.open_channels(bucket, {ids!r}, '{data.start.isoformat()}', "
            f"'{data.stop.isoformat()}', tolerance='{TOLERANCE}')\n\n"
            "With intake (catalogs/demo.yaml reads the endpoint from the environment):\n"
            f"  export INTAKE_HELIO_DEMO_ENDPOINT_URL={s3.endpoint_url}\n"
            "  python -c \"import intake; cat = intake.open_catalog('catalogs/demo.yaml'); "
            'print(list(cat.demo))"\n\n'
            "Any key and secret work with this local server. Ctrl-C stops it."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            log("stopping the local S3 endpoint")
