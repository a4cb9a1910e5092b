"""Several channels through the CLI jobs and the demo, against the real local S3 server.

The session's moto server holds two synthetic AIA channels for the whole module: ``aia_0094``
(12 frames, one truncated) and ``aia_0171`` (written with ``wavelength=171``, 3 s after each
94 Å frame, two frames short at the end and one truncated). Checked: ``intake-helio
irradiance`` and ``reduce`` with several dataset ids give the values of
``ih.irradiance(ih.open_channels(...))`` / ``ih.map_frames`` computed in-process, in files
with dimensions ``(channel, time)`` (CSV in long form); a killed or interrupted two-channel
run resumes to byte-identical files; and the demo's two-channel PNG has one line per channel
and, in a second panel, the magnetometer's |B| read from CDF files through the catalog.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from astropy.io import fits
from matplotlib import pyplot as plt
from PIL import Image

import intake_helio as ih
from intake_helio.app.cli import main
from intake_helio.app.demo import run_demo
from intake_helio.app.results import irradiance_figure, outputs_figure
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import job_argv, stop_slow_run
from tests.partstore import saved_parts

N, N171, PART = 12, 10, 4
IDS = ["aia_0094", "aia_0171"]
ROOT = "s3://helio-demo/"
C0, C1 = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours
C3 = (214, 39, 40)  # its fourth: the demo's |B| per minute


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def served(s3_server):
    """(LocalS3, 94 Å DemoDataset, 171 Å DemoDataset) in the session's server.

    No test of this module uses the per-test ``s3`` fixture, which would reset the server.
    """
    s3_server.reset()
    so = s3_server.storage_options
    a = write_demo_dataset(ROOT, so, frames=N, size=32)
    b = write_demo_dataset(
        ROOT, so, frames=N171, size=32, wavelength=171, start=a.start + pd.Timedelta("3s")
    )
    yield s3_server, a, b
    s3_server.reset()


def _args(served, command, out, *extra, datasets=("aia_0094", "aia_0171")):
    s3, a, _ = served
    return job_argv(
        command,
        ROOT,
        datasets,
        a.start,
        a.stop,
        out,
        *extra,
        endpoint_url=s3.endpoint_url,
        key="k",
        secret="s",
        part_size=PART,
    )


@pytest.fixture(scope="module")
def channels(served):
    """The two channels opened in-process, as a notebook user would."""
    s3, a, _ = served
    bucket = ih.open_bucket(ROOT, storage_options=s3.storage_options)
    return ih.open_channels(bucket, IDS, a.start, a.stop, tolerance="6s")


@pytest.fixture(scope="module")
def library(channels):
    """``ih.irradiance`` of the two channels in DN/s (the job's default), computed in-process."""
    return ih.irradiance(channels, normalize=True, progress=False)


def _rates(served, d) -> np.ndarray:
    """The generator's true mean of each frame of ``d`` divided by the frame's own EXPTIME."""
    fs = served[0].filesystem()
    exptime = []
    for key in d.datakeys:
        if key in d.corrupt:  # truncated: no header to read, no value
            exptime.append(np.nan)
            continue
        with fs.open(key.removeprefix("s3://")) as f:
            exptime.append(fits.getheader(f, 1)["EXPTIME"])
    return np.asarray(d.expected_mean) / np.asarray(exptime)


@pytest.fixture(scope="module")
def reference(served, tmp_path_factory):
    """An uninterrupted two-channel irradiance run (a subprocess) -> (process, out dir)."""
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(
        [sys.executable, "-m", "intake_helio.app.cli", *_args(served, "irradiance", out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc, out


def _read_csv(path) -> pd.DataFrame:
    nan = {name: ["NaN"] for name in ("irradiance", "mean", "max")}
    return pd.read_csv(path, keep_default_na=False, na_values=nan)


def _wide(table: pd.DataFrame, column: str) -> np.ndarray:
    """A long-form column as a (channel, time) array, channels in IDS order."""
    return np.stack([table.loc[table["channel"] == c, column].to_numpy() for c in IDS])


def _expected_status(a, b) -> np.ndarray:
    status = np.full((2, N), "ok", dtype=object)
    status[0, a.datakeys.index(a.corrupt[0])] = "truncated"
    status[1, b.datakeys.index(b.corrupt[0])] = "truncated"
    status[1, N171:] = "no frame within tolerance"
    return status


def _data_lines(ax) -> dict[str, np.ndarray]:
    """The y values of the plotted lines labelled with a dataset id (one per channel)."""
    out = {}
    for line in ax.get_lines():
        name = line.get_label().split(" ")[0]
        if name in IDS and ":" not in line.get_label():
            out[name] = np.asarray(line.get_ydata(), dtype=np.float64)
    return out


def _colour_pixels(png: Path, colour) -> int:
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    return _colour_count(rgb, colour)


def _colour_count(rgb: np.ndarray, colour) -> int:
    return int((np.abs(rgb - np.asarray(colour)).sum(axis=-1) <= 30).sum())


# ----------------------------------------------------------------------------- demo data
def test_second_channel_is_an_aia_171_dataset(served):
    s3, a, b = served
    fs = s3.filesystem()
    assert b.dataset_id == "aia_0171" and b.wavelength == 171 and a.wavelength == 94
    assert b.datakeys[0] == (
        f"{ROOT}sdo/aia/20201231/0171/aia_lev1_171a_2020_12_31t22_00_03_00z_image_lev1.fits"
    )
    catalog = ih.open_bucket(ROOT, storage_options=s3.storage_options)
    assert catalog["aia_0171"].title == "AIA 0171 FITS data (synthetic demo)"
    assert catalog["aia_0094"].title == "AIA 0094 FITS data (synthetic demo)"
    headers = {}
    for d in (a, b):
        with fits.open(fs.open(d.datakeys[0].removeprefix("s3://"))) as hdul:
            headers[d.wavelength] = hdul[1].header.copy()
    assert headers[171]["WAVELNTH"] == 171 and headers[171]["WAVE_STR"] == "171_THIN"
    assert headers[171]["INSTRUME"] == "AIA_3" and headers[94]["INSTRUME"] == "AIA_4"
    assert headers[94]["WAVELNTH"] == 94 and headers[94]["WAVE_STR"] == "94_THIN"
    assert b.expected_rate[0] > 1.5 * a.expected_rate[0]  # the 171 Å disk is brighter (DN/s)


# ----------------------------------------------------------------------------- irradiance
def test_two_channel_irradiance_equals_the_library(served, reference, library):
    proc, out = reference
    _, a, b = served
    assert proc.returncode == 3, proc.stderr  # finished, with failed frames
    assert "Traceback" not in proc.stderr
    assert f"frames: {2 * N}  ok: {2 * N - 4}  failed: 4" in proc.stdout
    assert f"channel aia_0094: frames: {N}  ok: {N - 1}  failed: 1" in proc.stdout
    assert f"channel aia_0171: frames: {N}  ok: {N - 3}  failed: 3" in proc.stdout
    assert "failed (truncated): 2" in proc.stdout
    assert "failed (no frame within tolerance): 2" in proc.stdout
    for kind in ("csv", "nc", "png"):
        assert f"wrote {kind}: {out / f'irradiance.{kind}'}" in proc.stdout

    with xr.open_dataset(out / "irradiance.nc") as nc:
        nc = nc.load()
    assert nc["irradiance"].dims == ("channel", "time")
    assert nc["channel"].values.tolist() == IDS == library["channel"].values.tolist()
    np.testing.assert_array_equal(nc["time"].values, library["time"].values)
    np.testing.assert_array_equal(nc["irradiance"].values, library["irradiance"].values)
    np.testing.assert_array_equal(nc["n_valid"].values, library["n_valid"].values)
    assert nc["status"].values.tolist() == library["status"].values.tolist()
    assert nc["datakey"].values.tolist() == library["datakey"].values.tolist()
    assert nc["status"].values.tolist() == _expected_status(a, b).tolist()
    assert nc["irradiance"].attrs["units"] == "DN/s" == library["irradiance"].attrs["units"]
    assert nc.attrs["channels"] == "aia_0094,aia_0171" and nc.attrs["tolerance"] == "6 s"
    np.testing.assert_allclose(nc["irradiance"].values[0], _rates(served, a), rtol=1e-6)
    np.testing.assert_allclose(nc["irradiance"].values[1, :N171], _rates(served, b), rtol=1e-6)
    # each channel's own frame time: the 171 Å frames 3 s after the 94 Å ones on the axis
    assert "frame_time" in nc.attrs["time_axis"] and "DATE-OBS" in nc.attrs["time_axis"]
    own = nc["frame_time"].values
    np.testing.assert_array_equal(own[0], a.times.to_numpy())
    np.testing.assert_array_equal(own[1, :N171], b.times.to_numpy())
    np.testing.assert_array_equal(own[1, :N171] - nc["time"].values[:N171], [3 * 10**9] * N171)
    assert np.isnat(own[1, N171:]).all()  # no 171 Å frame within the tolerance there
    np.testing.assert_array_equal(own, library["frame_time"].values)

    # the CSV in long form: a channel column, one row per channel and frame, in time order
    table = _read_csv(out / "irradiance.csv")
    assert list(table.columns) == [
        "time",
        "channel",
        "frame_time",
        "datakey",
        "irradiance",
        "units",
        "n_valid",
        "status",
    ]
    assert set(table["units"]) == {"DN/s"}
    frame_time = pd.to_datetime(table["frame_time"].replace("", None))
    np.testing.assert_array_equal(_wide(table.assign(frame_time=frame_time), "frame_time"), own)
    assert len(table) == 2 * N
    assert table["channel"].tolist() == IDS * N
    times = pd.to_datetime(table["time"], format="%Y-%m-%dT%H:%M:%S.%f").to_numpy()
    np.testing.assert_array_equal(times[::2], library["time"].values)
    np.testing.assert_array_equal(times[1::2], library["time"].values)
    np.testing.assert_array_equal(_wide(table, "irradiance"), library["irradiance"].values)
    assert _wide(table, "status").tolist() == library["status"].values.tolist()
    assert _wide(table, "datakey").tolist() == library["datakey"].values.tolist()


def test_two_channel_png_has_one_line_per_channel(reference, library):
    _, out = reference
    with xr.open_dataset(out / "irradiance.nc") as nc:
        fig = irradiance_figure(nc.load())
    try:
        (ax,) = fig.axes
        lines = _data_lines(ax)
        assert list(lines) == IDS
        for k, name in enumerate(IDS):
            expected = np.where(
                library["status"].values[k] == "ok", library["irradiance"].values[k], np.nan
            )
            np.testing.assert_array_equal(lines[name], expected)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("aia_0171: failed frame (3)") for t in labels), labels
        assert ax.get_xlabel() == "time (UTC)" and ax.get_ylabel() == "mean intensity [DN/s]"
    finally:
        plt.close(fig)
    png = out / "irradiance.png"
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 600 and img.size[1] > 300
    # both lines are drawn in the saved file (a legend sample alone is ~100 such pixels)
    assert _colour_pixels(png, C0) > 300 and _colour_pixels(png, C1) > 300


def test_dataset_option_gives_the_same_files(served, reference, tmp_path, cli):
    _, ref = reference
    args = _args(served, "irradiance", tmp_path, "--dataset", "aia_0171", datasets=["aia_0094"])
    code, _, err = cli(args)
    assert code == 3, err
    assert (tmp_path / "irradiance.csv").read_bytes() == (ref / "irradiance.csv").read_bytes()
    with (
        xr.open_dataset(tmp_path / "irradiance.nc") as x,
        xr.open_dataset(ref / "irradiance.nc") as y,
    ):
        xr.testing.assert_identical(x.load(), y.load())


@pytest.mark.parametrize(
    ("datasets", "extra", "message"),
    [
        ([], [], "no dataset given"),
        (["aia_0094", "aia_0094"], [], "dataset 'aia_0094' given twice"),
        (["aia_0094", "aia_0193"], [], "aia_0193"),
    ],
    ids=["none", "twice", "unknown"],
)
def test_bad_channel_input_exits_2_with_one_line(served, tmp_path, cli, datasets, extra, message):
    code, stdout, err = cli(_args(served, "irradiance", tmp_path, *extra, datasets=datasets))
    lines = err.strip().splitlines()
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("intake-helio: error: "), err
    assert message in lines[0]
    assert not (tmp_path / "irradiance.csv").exists()


def test_a_channel_with_nothing_within_tolerance_is_reported_not_refused(served, tmp_path, cli):
    from intake_helio.app.cli import _one_line_warnings

    with pytest.warns(ih.HelioWarning, match="'aia_0171' has no frame within") as caught:
        code, stdout, err = cli(_args(served, "irradiance", tmp_path, "--tolerance", "1s"))
    assert code == 3 and "Traceback" not in err
    assert f"failed (no frame within tolerance): {N}" in stdout, stdout
    df = pd.read_csv(tmp_path / "irradiance.csv")
    assert set(df.loc[df["channel"] == "aia_0171", "status"]) == {"no frame within tolerance"}
    w = caught[0]
    with _one_line_warnings():  # how the command line prints it: one line
        shown = warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
    assert shown.startswith("intake-helio: warning: 'aia_0171' has no frame within tolerance")
    assert shown.count("\n") == 1 and "tolerance='1s'" in shown


def test_bad_tolerance_is_refused_by_the_parser(served, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(_args(served, "reduce", tmp_path, "--tolerance", "soon"))
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "intake-helio reduce: error: argument --tolerance: 'soon' is not a duration such as "
        "6s or 1min"
    )


# ----------------------------------------------------------------------------- reduce
def test_two_channel_reduce_equals_map_frames(served, channels, tmp_path, cli):
    args = _args(served, "reduce", tmp_path, "--stat", "mean", "--stat", "max")
    code, _, err = cli([*args, "--format", "csv,nc,zarr,png"])
    assert code == 3, err
    expected = ih.map_frames(channels, ["mean", "max"], progress=False)
    assert expected["mean"].dims == ("channel", "time")

    with xr.open_dataset(tmp_path / "reduce.nc") as nc:
        nc = nc.load()
    with xr.open_zarr(tmp_path / "reduce.zarr") as zs:
        zs = zs.load()
    assert zs.attrs["complete"] is True
    for ds in (nc, zs):
        assert ds["mean"].dims == ("channel", "time") == ds["status"].dims
        assert [str(c) for c in ds["channel"].values] == IDS
        np.testing.assert_array_equal(ds["time"].values, expected["time"].values)
        for name in ("mean", "max"):
            np.testing.assert_array_equal(ds[name].values, expected[name].values)
        for name in ("status", "datakey"):
            text = [[str(v) for v in row] for row in ds[name].values.tolist()]
            assert text == expected[name].values.tolist()
    # the store as zarr itself sees it: chunks of one channel and one part
    group = zarr.open_group(str(tmp_path / "reduce.zarr"), mode="r")
    assert group["mean"].shape == (2, N) and group["mean"].chunks == (1, PART)
    assert group["mean"].attrs["_ARRAY_DIMENSIONS"] == ["channel", "time"]
    assert group["_resume/part_done"][:].tolist() == [1] * (2 * N // PART)

    table = _read_csv(tmp_path / "reduce.csv")
    assert list(table.columns) == [
        "time",
        "channel",
        "frame_time",
        "datakey",
        "mean",
        "max",
        "units",
        "status",
    ]
    np.testing.assert_array_equal(_wide(table, "mean"), expected["mean"].values)
    np.testing.assert_array_equal(_wide(table, "max"), expected["max"].values)

    fig = outputs_figure(nc)
    try:
        assert len(fig.axes) == 2
        for ax, name in zip(fig.axes, ("mean", "max"), strict=True):
            assert list(_data_lines(ax)) == IDS
            assert ax.get_ylabel() == f"{name} [DN]"
    finally:
        plt.close(fig)
    png = tmp_path / "reduce.png"
    assert _colour_pixels(png, C0) > 300 and _colour_pixels(png, C1) > 300


# ----------------------------------------------------------------------------- resume
def _stopped_part_way(served, tmp_path, command, sig, done) -> tuple[Path, int]:
    """Run ``command`` slowly in a subprocess, send ``sig`` once ``done()`` parts are saved."""
    out = tmp_path / "out"
    code, _, _ = stop_slow_run(
        tmp_path, _args(served, command, out), sig, lambda: done(out) >= 2, seconds=120
    )
    return out, code


def _saved_parts(out: Path) -> int:
    return len(saved_parts(out / "parts.zarr"))


def test_two_channel_irradiance_resumed_after_kill(served, reference, tmp_path, cli):
    out, code = _stopped_part_way(served, tmp_path, "irradiance", signal.SIGKILL, _saved_parts)
    assert code == -signal.SIGKILL
    store = out / "parts.zarr"
    done = saved_parts(store)
    assert 2 <= len(done) < 2 * N // PART, "the run was not stopped part-way"
    # each saved part's data and record: a chunk of each, (channel k, part p) for number n
    per_channel = N // PART
    names = [
        f"{v}/{n // per_channel}.{n % per_channel}" for n in done for v in ("mean", "status")
    ] + [f"_resume/part_done/{n}" for n in done]
    saved = {n: ((store / n).stat().st_mtime_ns, (store / n).read_bytes()) for n in names}

    # another tolerance or other channels are another run: refused, nothing touched
    code, _, err = cli([*_args(served, "irradiance", out), "--resume", "--tolerance", "5s"])
    assert code == 2 and "holds parts of a different run (differs in tolerance)" in err
    code, _, err = cli([*_args(served, "irradiance", out, datasets=IDS[::-1]), "--resume"])
    assert code == 2 and "differs in dataset, files" in err

    code, summary, err = cli([*_args(served, "irradiance", out), "--resume"])
    assert code == 3, err
    computed = int(re.search(r"computed: (\d+) frames", summary).group(1))
    assert computed == 2 * N - PART * len(done)
    for name, (mtime, raw) in saved.items():  # kept, not recomputed
        assert (store / name).stat().st_mtime_ns == mtime and (store / name).read_bytes() == raw
    assert _saved_parts(out) == 2 * N // PART
    _, ref = reference
    assert (out / "irradiance.csv").read_bytes() == (ref / "irradiance.csv").read_bytes()
    with xr.open_dataset(out / "irradiance.nc") as x, xr.open_dataset(ref / "irradiance.nc") as y:
        xr.testing.assert_identical(x.load(), y.load())


def test_two_channel_reduce_resumed_after_ctrl_c(served, tmp_path, cli):
    def done(out: Path) -> int:
        flags = out / "parts.zarr" / "_resume" / "part_done"
        return len([p for p in flags.glob("*") if not p.name.startswith(".")])

    out, code = _stopped_part_way(served, tmp_path, "reduce", signal.SIGINT, done)
    assert code == 130
    group = zarr.open_group(str(out / "parts.zarr"), mode="r")
    saved = int(np.sum(group["_resume/part_done"][:]))
    assert group.attrs["complete"] is False and 2 <= saved < 2 * N // PART

    # one channel of the two is another run (another part count too): refused, kept
    code, _, err = cli([*_args(served, "reduce", out, datasets=IDS[:1]), "--resume"])
    assert code == 2 and "holds parts of a different run (differs in dataset" in err, err
    group = zarr.open_group(str(out / "parts.zarr"), mode="r")
    assert int(np.sum(group["_resume/part_done"][:])) == saved

    code, summary, err = cli([*_args(served, "reduce", out), "--resume"])
    assert code == 3, err
    computed = int(re.search(r"computed: (\d+) frames", summary).group(1))
    assert computed == 2 * N - PART * saved
    fresh = tmp_path / "fresh"
    assert cli(_args(served, "reduce", fresh))[0] == 3
    assert (out / "reduce.csv").read_bytes() == (fresh / "reduce.csv").read_bytes()
    with xr.open_dataset(out / "reduce.nc") as x, xr.open_dataset(fresh / "reduce.nc") as y:
        xr.testing.assert_identical(x.load(), y.load())


# ----------------------------------------------------------------------------- demo
def test_demo_runs_two_channels_and_plots_both(tmp_path):
    log: list[str] = []
    out = tmp_path / "demo"
    report = run_demo(
        out=str(out), frames=12, size=64, cluster_kind=None, progress=False, log=log.append
    )
    assert report.ok, (report.max_rel_error, report.failed_as_expected, log)
    assert [d.dataset_id for d in report.channels] == IDS
    assert [d.wavelength for d in report.channels] == [94, 171]
    assert report.summary.frames == 24 and report.summary.failed == {"truncated": 2}
    assert set(report.summary.channels) == set(IDS)

    with xr.open_dataset(out / "irradiance.nc") as nc:
        nc = nc.load()
    assert nc["irradiance"].dims == ("channel", "time") and nc.sizes == {"channel": 2, "time": 12}
    # the demo's own truth, independently of the report: values and the failed files
    for k, d in enumerate(report.channels):
        assert nc["datakey"].values[k].tolist() == list(d.datakeys)
        np.testing.assert_allclose(nc["irradiance"].values[k], d.expected_rate, rtol=1e-6)
        failed = nc["datakey"].values[k][nc["status"].values[k] != "ok"].tolist()
        assert failed == list(d.corrupt) and len(failed) == 1
    assert len(_read_csv(out / "irradiance.csv")) == 24

    fig = irradiance_figure(nc)
    try:
        lines = _data_lines(fig.axes[0])
        assert list(lines) == IDS
        assert all(np.isfinite(v).sum() == 11 for v in lines.values())
    finally:
        plt.close(fig)
    png = out / "irradiance.png"
    assert png.stat().st_size > 10_000
    assert _colour_pixels(png, C0) > 300 and _colour_pixels(png, C1) > 300

    # the regions of the 94 channel (issue 28 item 5): a cutout isolates the flare, in DN/s
    # against the generator's truth of each box, read back from regions.csv
    a = report.channels[0]
    table = pd.read_csv(out / "regions.csv")
    assert list(table.columns) == [
        "time",
        "whole frame",
        "flare box",
        "quiet Sun box",
        "status",
        "units",
    ]
    good = table["status"].eq("ok").to_numpy()
    assert good.sum() == 11 and set(table["units"]) == {"DN/s"}
    np.testing.assert_allclose(table["whole frame"][good], np.array(a.expected_rate)[good], 1e-6)
    flare, quiet = table["flare box"].to_numpy(), table["quiet Sun box"].to_numpy()
    np.testing.assert_allclose(flare[good], a.box_rate("flare")[good], rtol=1e-6)
    np.testing.assert_allclose(quiet[good], a.box_rate("quiet")[good], rtol=1e-6)
    assert np.nanmax(flare[good]) / flare[0] > 3  # the flare box rises ~x4 (94 Å amplitude)
    assert np.nanmax(np.abs(quiet[good] / quiet[0] - 1)) < 0.03  # quiet Sun stays flat
    whole = table["whole frame"].to_numpy()
    assert 1.05 < np.nanmax(whole[good]) / whole[0] < 1.5  # the whole frame: a little
    assert (out / "regions.png").stat().st_size > 10_000

    # the magnetometer (issue 22): CDF files opened through the catalog as a time series,
    # each minute's mean |B| in magnetometer.csv equal to the generator's truth
    mag = report.series
    assert mag.dataset_id == "mag_demo" and len(mag.datakeys) == 2  # 48 min in 30-min files
    assert report.magnetometer_rel_error < 1e-12
    assert not dataclasses.replace(report, magnetometer_rel_error=1e-3).ok  # it fails the demo
    table = pd.read_csv(out / "magnetometer.csv", parse_dates=["time"])
    assert list(table.columns) == ["time", "B_mean", "units"] and set(table["units"]) == {"nT"}
    np.testing.assert_array_equal(table["time"], np.array(mag.minutes, dtype="datetime64[ns]"))
    np.testing.assert_allclose(table["B_mean"], mag.mean_b, rtol=1e-12, equal_nan=True)
    assert table["B_mean"].isna().sum() == 1  # the data gap's whole minute
    np.testing.assert_array_equal(report.magnetometer["file_status"], ["ok", "ok"])
    # the PNG has two panels: 6.8 in high (4.5 in with one), the |B| lines (C2 every second,
    # C3 each minute's mean) only in the lower one, the channels' lines only in the upper one
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    assert rgb.shape[0] == round(6.8 * 110)
    half = rgb.shape[0] // 2
    for part, (ours, theirs) in ((rgb[half:], (C3, C0)), (rgb[:half], (C0, C3))):
        assert _colour_count(part, ours) > 300 and _colour_count(part, theirs) < 20


# ----------------------------------------------------------------------------- store layout
def test_zarr_store_of_channels_numbers_parts_channel_by_channel(tmp_path):
    from intake_helio.app.stores import StoreError, ZarrStore

    times = pd.date_range("2021-01-01", periods=5, freq="12s")
    keys = np.array([[f"s3://b/{c}/{i}.fits" for i in range(5)] for c in IDS])
    kwargs = dict(times=times, part_size=2, channels=IDS)
    store = ZarrStore(tmp_path / "s.zarr", {"run": 1}, False, datakeys=keys, **kwargs)
    assert (store.parts_per_channel, store.parts) == (3, 6)
    assert [store.part_number(k, p) for k in (0, 1) for p in (0, 1, 2)] == list(range(6))
    with pytest.raises(StoreError, match="part 3 of channel 1 is not a part"):
        store.part_number(1, 3)
    with pytest.raises(ih.HelioError, match=r"datakeys of shape \(5,\); expected \(2, 5\)"):
        ZarrStore(tmp_path / "t.zarr", {"run": 1}, False, datakeys=keys[0], **kwargs)
    part = xr.Dataset(
        {"mean": ("time", [1.0, 2.0]), "status": ("time", ["ok", "truncated"])},
        coords={"time": times[2:4]},
    )
    part["datakey"] = ("time", keys[1, 2:4])
    store.save(store.part_number(1, 1), part)
    assert store.done() == {4}
    loaded = store.load()
    assert loaded["mean"].dims == ("channel", "time")
    np.testing.assert_array_equal(loaded["mean"].values[1, 2:4], [1.0, 2.0])
    assert np.isnan(loaded["mean"].values[0]).all()
    assert loaded["status"].values.tolist() == [[""] * 5, ["", "", "ok", "truncated", ""]]
    assert loaded["channel"].values.tolist() == IDS
