"""``intake-helio reduce`` end to end over the session's local S3 server.

Checked: the CSV, netCDF and Zarr files hold exactly what ``map_frames`` computes in-process
(built-in statistics, and a ``--science`` function returning an array per frame, run on a
``LocalCluster`` whose worker processes cannot import the function's module); a Zarr store
interrupted by SIGKILL is not marked complete and ``--resume`` completes it computing only
the missing parts; resuming with other functions is refused; a bad ``--science`` value
exits 2 with one line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import intake_helio as ih
from intake_helio.compute.engine import map_frames
from intake_helio.testing.demo_data import write_demo_dataset

FRAMES = 24
PART = 4
# runs the real CLI with every frame read taking 0.2 s longer (a slow network), so that a
# run can be interrupted part-way; nothing else is changed (as in test_cli_job.py)
SLOW_WRAPPER = """
import sys, time
import intake_helio.frames.tasks as tasks
read = tasks.MapTask.item
def slow_one(*args, **kwargs):
    time.sleep(0.2)
    return read(*args, **kwargs)
if __name__ == "__main__":
    tasks.MapTask.item = slow_one
    from intake_helio.app.cli import main
    sys.exit(main(sys.argv[1:]))
"""
# runs the real CLI with the --science module's directory on this process's PYTHONPATH
# only: once --science has imported the module here, its directory leaves the environment
# and sys.path, which the workers of the LocalCluster started afterwards would inherit
CLIENT_ONLY_WRAPPER = """
import os, sys
from intake_helio.app import arguments, cli
load = arguments.science
def client_only(value):
    func = load(value)
    hidden = os.environ.pop("PYTHONPATH", None)
    sys.path[:] = [p for p in sys.path if p != hidden]
    return func
if __name__ == "__main__":  # not in the workers, which run this file as __mp_main__
    arguments.science = client_only
    sys.exit(cli.main(sys.argv[1:]))
"""
SCIENCE = '''
import importlib.util
import os

import numpy as np


def profile(data, header):
    """The 5th, 50th and 95th percentiles of the frame and its exposure time."""
    pct = np.nanpercentile(data.astype(np.float64), [5, 50, 95])
    return np.append(pct, float(header["EXPTIME"]))


def where(data, header):
    """Where this ran: the process, and whether this module can be imported there."""
    return {
        "pid": os.getpid(),
        "importable": importlib.util.find_spec("{name}") is not None,
    }


LIMIT = 3
'''


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def served(s3_server):
    """(LocalS3, DemoDataset): 24 frames of 64x64 (one truncated) in the session's server."""
    s3_server.reset()
    data = write_demo_dataset("s3://helio-demo/", s3_server.storage_options, frames=FRAMES, size=64)
    yield s3_server, data
    s3_server.reset()


def _args(served, out, *extra, stop=None):
    s3, data = served
    return [
        "reduce",
        data.root,
        data.dataset_id,
        "--start",
        str(data.start),
        "--stop",
        str(stop or data.stop),
        "--out",
        str(out),
        "--no-progress",
        "--part-size",
        str(PART),
        "--endpoint-url",
        s3.endpoint_url,
        "--storage-option",
        "key=k",
        "--storage-option",
        "secret=s",
        *extra,
    ]


def _popen(args, **kwargs) -> subprocess.Popen:
    """Start a child whose SIGINT acts as under a terminal.

    A shell may start the tests with SIGINT ignored, which children would inherit; a Python
    handler here becomes the default disposition in the child.
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(args, **kwargs)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _frames(served, stop=None) -> xr.DataArray:
    s3, data = served
    bucket = ih.open_bucket(data.root, storage_options=s3.storage_options)
    return bucket[data.dataset_id].to_dataarray(data.start, stop or data.stop, on_error="nan")


def _science_module(directory: Path) -> str:
    """A science module of a unique name in ``directory`` (not importable elsewhere)."""
    name = f"helio_science_{uuid.uuid4().hex[:10]}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(SCIENCE.replace("{name}", name))
    return name


def _import_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _us(times) -> np.ndarray:
    return pd.DatetimeIndex(np.asarray(times)).floor("us").as_unit("ns").to_numpy()


def _open_zarr(path: Path) -> xr.Dataset:
    with xr.open_zarr(path) as ds:
        return ds.load()


def _text(values) -> list[str]:
    return [str(v) for v in np.asarray(values).tolist()]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("intake-helio: error: ")
    return lines[0]


def _check_like(saved: xr.Dataset, expected: xr.Dataset, names) -> None:
    """Saved values equal the in-process result: outputs, status, datakey, times (µs)."""
    np.testing.assert_array_equal(saved["time"].to_numpy(), _us(expected["time"]))
    for name in names:
        np.testing.assert_array_equal(saved[name].to_numpy(), expected[name].to_numpy())
    assert _text(saved["status"]) == _text(expected["status"])
    assert _text(saved["datakey"]) == _text(expected["datakey"])


# ----------------------------------------------------------------------------- statistics
def test_stats_saved_as_csv_nc_and_zarr_equal_map_frames(served, tmp_path, cli):
    _, data = served
    out = tmp_path / "out"
    code, stdout, err = cli(
        _args(
            served,
            out,
            "--cluster",
            "none",
            "--stat",
            "mean",
            "--stat",
            "max",
            "--format",
            "csv,nc,zarr,png",
        )
    )
    assert code == 3, err  # one truncated frame
    assert f"frames: {FRAMES}  ok: {FRAMES - 1}  failed: 1" in stdout
    assert f"computed: {FRAMES} frames" in stdout
    for kind in ("csv", "nc", "zarr", "png"):
        assert f"wrote {kind}: {out / f'reduce.{kind}'}" in stdout
    expected = map_frames(_frames(served), ["mean", "max"], progress=False)

    store = _open_zarr(out / "reduce.zarr")
    assert store.attrs["complete"] is True
    assert set(store.data_vars) == {"mean", "max", "status", "datakey", "frame_time"}
    _check_like(store, expected, ["mean", "max"])
    assert store["mean"].attrs["units"] == "DN" == expected["mean"].attrs["units"]
    np.testing.assert_array_equal(store["frame_time"].to_numpy(), store["time"].to_numpy())
    raw = zarr.open_group(str(out / "reduce.zarr"), mode="r")
    assert raw["time"].dtype == np.int64 and raw["time"].chunks == (PART,)
    assert raw["time"].attrs["units"].startswith("microseconds since 1970-01-01")
    assert raw["mean"].chunks == (PART,)

    with xr.open_dataset(out / "reduce.nc") as nc:
        _check_like(nc.load(), expected, ["mean", "max"])
    table = pd.read_csv(out / "reduce.csv", keep_default_na=False, na_values=["NaN"])
    assert list(table.columns) == [
        "time",
        "frame_time",
        "datakey",
        "mean",
        "max",
        "units",
        "status",
    ]
    assert set(table["units"]) == {"DN"}
    np.testing.assert_array_equal(
        pd.to_datetime(table["time"], format="%Y-%m-%dT%H:%M:%S.%f").to_numpy(),
        _us(expected["time"]),
    )
    np.testing.assert_array_equal(table["mean"].to_numpy(), expected["mean"].to_numpy())
    np.testing.assert_array_equal(table["max"].to_numpy(), expected["max"].to_numpy())
    failed = table[table["status"] != "ok"]
    assert failed["datakey"].tolist() == list(data.corrupt)
    assert failed["status"].tolist() == ["truncated"]
    assert (out / "reduce.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_stat_is_the_mean_and_exit_0_when_every_frame_is_ok(served, tmp_path, cli):
    _, data = served
    first_bad = min(data.datakeys.index(k) for k in data.corrupt)
    stop = data.times[first_bad - first_bad % PART]
    code, stdout, err = cli(_args(served, tmp_path, "--cluster", "none", stop=stop))
    assert code == 0, err
    assert "wrote csv" in stdout and "wrote nc" in stdout and "zarr" not in stdout
    # without --format zarr the parts are kept in parts.zarr (for --resume)
    assert _open_zarr(tmp_path / "parts.zarr").attrs["complete"] is True
    table = pd.read_csv(tmp_path / "reduce.csv")
    assert list(table.columns) == ["time", "frame_time", "datakey", "mean", "units", "status"]
    np.testing.assert_allclose(table["mean"], data.expected_mean[: len(table)], rtol=1e-6)


def test_resume_with_other_functions_is_refused(served, tmp_path, cli):
    _, data = served
    stop = data.times[2 * PART]
    assert cli(_args(served, tmp_path, "--cluster", "none", "--stat", "sum", stop=stop))[0] == 0
    before = (tmp_path / "reduce.csv").read_bytes()
    code, stdout, err = cli(
        _args(served, tmp_path, "--cluster", "none", "--stat", "min", "--resume", stop=stop)
    )
    assert code == 2 and stdout == ""
    line = _one_error_line(err)
    assert "holds parts of a different run (differs in funcs)" in line
    assert (tmp_path / "reduce.csv").read_bytes() == before


@pytest.mark.parametrize("case", ["symlinked-store", "foreign-store", "symlinked-csv"])
def test_out_dir_guard_refuses_the_store_or_a_file_and_touches_nothing(served, tmp_path, cli, case):
    out = tmp_path / "out"
    out.mkdir()
    theirs = tmp_path / "theirs.zarr"
    xr.Dataset({"v": ("t", np.arange(3))}).to_zarr(theirs, zarr_format=2, consolidated=True)
    if case == "symlinked-store":
        (out / "reduce.zarr").symlink_to(theirs, target_is_directory=True)
        expected = f"Zarr store '{out / 'reduce.zarr'}' is a symbolic link"
    elif case == "foreign-store":  # a Zarr store that intake-helio did not write
        theirs = theirs.rename(out / "reduce.zarr")
        expected = f"{theirs} is a Zarr store that intake-helio did not write"
    else:
        (out / "reduce.csv").symlink_to(theirs / ".zgroup")
        expected = f"output file '{out / 'reduce.csv'}' is a symbolic link"
    before = {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()}
    for extra in ([], ["--resume"]):
        args = _args(served, out, "--cluster", "none", "--format", "csv,zarr", *extra)
        code, stdout, err = cli(args)
        assert code == 2 and stdout == ""
        line = _one_error_line(err)
        assert expected in line and "another --out" in line
    assert {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()} == before
    assert not (out / "reduce.nc").exists()


# ----------------------------------------------------------------------------- science
@pytest.mark.slow
def test_science_function_reaches_worker_processes_by_value(served, tmp_path):
    client_only = tmp_path / "client_only"
    name = _science_module(client_only)
    wrapper = tmp_path / "client_only_cli.py"
    wrapper.write_text(CLIENT_ONLY_WRAPPER)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(client_only)}
    args = _args(
        served,
        out,
        "--cluster",
        "local",
        "--workers",
        "2",
        "--worker-cores",
        "1",
        "--science",
        f"{name}:profile",
        "--science",
        f"{name}:where",
        "--format",
        "csv,nc,zarr,png",
    )
    proc = subprocess.Popen(
        [sys.executable, str(wrapper), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert "note: png: not made (outputs profile are arrays" in stdout
    assert "note: csv: array outputs profile are in the nc/zarr files only" in stdout
    assert not (out / "reduce.png").exists()

    store = _open_zarr(out / "reduce.zarr")
    assert store.attrs["complete"] is True
    assert store["profile"].dims == ("time", "profile_dim_0")
    ok = np.array(_text(store["status"])) == "ok"
    assert ok.sum() == FRAMES - 1
    # computed in worker processes, where the module could not be imported
    pids = set(store["pid"].to_numpy()[ok].astype(int).tolist())
    assert proc.pid not in pids and len(pids) >= 1
    assert (store["importable"].to_numpy()[ok] == 0).all()

    module = _import_file(client_only / f"{name}.py")
    expected = map_frames(_frames(served), module.profile, progress=False)
    _check_like(store, expected, ["profile"])
    with xr.open_dataset(out / "reduce.nc") as nc:
        _check_like(nc.load(), expected, ["profile"])
    table = pd.read_csv(out / "reduce.csv", keep_default_na=False)
    assert list(table.columns) == ["time", "frame_time", "datakey", "pid", "importable", "status"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{name}.profile", "expected MODULE:FUNCTION"),
        ("{name}:", "expected MODULE:FUNCTION"),
        ("helio_no_such_module_x1:profile", "no module named 'helio_no_such_module_x1'"),
        ("{name}:nothing", "has no attribute 'nothing'; expected MODULE:FUNCTION"),
        ("{name}:LIMIT", "is int 3, not callable; expected MODULE:FUNCTION"),
    ],
    ids=["no-colon", "no-function", "no-module", "no-attribute", "not-callable"],
)
def test_bad_science_exits_2_with_one_line(served, tmp_path, cli, monkeypatch, value, message):
    name = _science_module(tmp_path / "mods")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    value = value.replace("{name}", name)
    code, stdout, err = cli(_args(served, tmp_path / "out", "--science", value))
    assert code == 2 and stdout == ""
    line = _one_error_line(err)
    assert f"--science {value!r}: " in line
    assert message in line
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- resume
def test_ctrl_c_exits_130_with_the_resume_hint(served, tmp_path):
    wrapper = tmp_path / "slow_cli.py"
    wrapper.write_text(SLOW_WRAPPER)
    out = tmp_path / "out"
    record = out / "reduce.zarr" / "_resume" / "part_done"
    args = _args(served, out, "--cluster", "none", "--format", "zarr")
    proc = _popen(
        [sys.executable, str(wrapper), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not [p for p in record.glob("*") if not p.name.startswith(".")]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no part saved within 90 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert stdout == ""
    assert stderr.strip() == "intake-helio: interrupted; rerun with --resume to continue"
    assert _open_zarr(out / "reduce.zarr").attrs["complete"] is False


def test_zarr_store_resumed_after_kill(served, tmp_path, cli):
    wrapper = tmp_path / "slow_cli.py"
    wrapper.write_text(SLOW_WRAPPER)
    out = tmp_path / "out"
    store = out / "reduce.zarr"
    record = store / "_resume" / "part_done"
    args = _args(
        served,
        out,
        "--cluster",
        "none",
        "--stat",
        "mean",
        "--stat",
        "count",
        "--format",
        "zarr,csv",
    )
    proc = subprocess.Popen(
        [sys.executable, str(wrapper), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        # a part's record is written after its data: one chunk file per saved part
        while not [p for p in record.glob("*") if not p.name.startswith(".")]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no part saved within 90 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    done = np.flatnonzero(zarr.open_group(str(store), mode="r")["_resume/part_done"][:])
    assert 1 <= len(done) < FRAMES // PART, "the run was not interrupted part-way"
    assert _open_zarr(store).attrs["complete"] is False
    raw = zarr.open_group(str(store), mode="r", use_consolidated=False)
    assert raw.attrs["complete"] is False
    saved = {
        f"{var}/{p}": (
            (store / var / str(p)).stat().st_mtime_ns,
            (store / var / str(p)).read_bytes(),
        )
        for var in ("mean", "count", "status")
        for p in done
    }
    assert not (out / "reduce.csv").exists()

    code, stdout, err = cli([*args, "--resume"])  # in-process: faster
    assert code == 3, err
    computed = int(re.search(r"computed: (\d+) frames", stdout).group(1))
    assert computed == FRAMES - PART * len(done)
    for name, (mtime, raw_bytes) in saved.items():  # saved parts neither recomputed nor rewritten
        assert (store / name).stat().st_mtime_ns == mtime
        assert (store / name).read_bytes() == raw_bytes

    resumed = _open_zarr(store)
    assert resumed.attrs["complete"] is True
    ref = tmp_path / "ref"
    ref_args = [a if a != str(out) else str(ref) for a in args]
    assert cli(ref_args)[0] == 3
    xr.testing.assert_identical(resumed, _open_zarr(ref / "reduce.zarr"))
    assert (out / "reduce.csv").read_bytes() == (ref / "reduce.csv").read_bytes()
    expected = map_frames(_frames(served), ["mean", "count"], progress=False)
    _check_like(resumed, expected, ["mean", "count"])
