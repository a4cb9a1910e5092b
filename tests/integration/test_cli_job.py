"""``intake-helio irradiance`` and ``intake-helio demo`` end to end, mostly as real subprocesses.

The session's local S3 server (moto on 127.0.0.1) holds a 40-frame demo dataset for the
whole module. Checked: every exit code with its one-line message, the files written, resuming
after SIGINT and SIGKILL (byte-identical CSV), the demo with no process left behind (also when
interrupted), and that a secret never reaches any output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import xarray as xr
from astropy.io import fits
from PIL import Image

from intake_helio.app.cli import main
from intake_helio.app.legacy_parts import read_part
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import SLOW_CLI, job_argv, one_error_line, stop_slow_run
from tests.partstore import legacy_identity, saved_parts, write_legacy_parts

FRAMES = 40
PART = 4
CANARY_KEY = "CANARYKEY7c1e0d"
CANARY_SECRET = "CANARY-SECRET-4f9a2b71d3"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def served(s3_server):
    """(LocalS3, DemoDataset): 40 frames of 64x64 in the session's server, and a 1400 bucket.

    No test of this module uses the per-test ``s3`` fixture, which would reset the server.
    """
    s3_server.reset()
    data = write_demo_dataset("s3://helio-demo/", s3_server.storage_options, frames=FRAMES, size=64)
    fs = s3_server.filesystem()
    catalog = json.loads(fs.cat_file("helio-demo/catalog.json"))
    catalog["status"] = {"code": 1400, "message": "down for maintenance"}
    fs.mkdir("helio-down")
    fs.pipe_file("helio-down/catalog.json", json.dumps(catalog).encode())
    fs.mkdir("helio-broken")  # a catalog.json that is not JSON: the server's data, not the user's
    fs.pipe_file("helio-broken/catalog.json", b'{"CloudMe": "0.2", "catalog": [')
    yield s3_server, data
    s3_server.reset()


def _args(served, out, *extra, start=None, stop=None, key="k", secret="s", dataset=None):
    s3, data = served
    return job_argv(
        "irradiance",
        data.root,
        [dataset or data.dataset_id],
        start or data.start,
        stop or data.stop,
        out,
        *extra,
        endpoint_url=s3.endpoint_url,
        key=key,
        secret=secret,
        part_size=PART,
    )


def _run(args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "intake_helio.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture(scope="module")
def reference(served, tmp_path_factory):
    """An uninterrupted run over all 40 frames (with a canary secret), as a subprocess."""
    out = tmp_path_factory.mktemp("reference")
    proc = _run(_args(served, out, key=CANARY_KEY, secret=CANARY_SECRET))
    return proc, out


def _read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values={"irradiance": ["NaN"]})


# ----------------------------------------------------------------------------- exit codes
def test_exit_0_when_every_frame_is_ok(served, tmp_path, cli):
    _, data = served
    first_bad = min(data.datakeys.index(k) for k in data.corrupt)
    assert first_bad >= 8
    code, out, err = cli(_args(served, tmp_path, stop=data.times[8]))
    assert code == 0, err
    assert "frames: 8  ok: 8  failed: 0" in out
    assert re.search(r"elapsed: [\d.]+ s  computed: 8 frames  rate: [\d.]+ files/s", out)
    table = _read_csv(tmp_path / "irradiance.csv")
    assert table["datakey"].tolist() == list(data.datakeys[:8])
    fs = served[0].filesystem()
    exptime = [fits.getheader(io.BytesIO(fs.cat_file(k)), 1)["EXPTIME"] for k in data.datakeys[:8]]
    rate = np.asarray(data.expected_mean[:8]) / np.asarray(exptime)  # the default: DN/s
    np.testing.assert_allclose(table["irradiance"], rate, rtol=1e-6)
    assert (table["status"] == "ok").all() and set(table["units"]) == {"DN/s"}


def test_exit_3_with_the_failed_frame_listed(served, reference):
    proc, out = reference
    _, data = served
    assert proc.returncode == 3, proc.stderr
    assert f"frames: {FRAMES}  ok: {FRAMES - 1}  failed: 1" in proc.stdout
    assert "failed (truncated): 1" in proc.stdout
    assert re.search(r"elapsed: [\d.]+ s  computed: 40 frames  rate: [\d.]+ files/s", proc.stdout)
    for kind in ("csv", "nc", "png"):
        assert f"wrote {kind}: {out / f'irradiance.{kind}'}" in proc.stdout
    assert "Traceback" not in proc.stderr
    table = _read_csv(out / "irradiance.csv")
    failed = table[table["status"] != "ok"]
    assert failed["datakey"].tolist() == list(data.corrupt)
    assert failed["status"].tolist() == ["truncated"]
    assert failed["irradiance"].isna().all() and (failed["n_valid"] == 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "aia_0193"}, "aia_0193"),
        ({"start": "2021-01-01T00:00", "stop": "2020-12-31T23:00"}, "2021-01-01"),
        ({"extra": ["--cutout", "10:20"]}, "--cutout '10:20': expected Y0:Y1,X0:X1"),
        ({"extra": ["--cutout", "100:200,0:64"]}, "selects no pixels"),
        ({"extra": ["--storage-option", "anon"]}, "--storage-option 'anon': expected KEY=VALUE"),
    ],
    ids=["unknown-dataset", "start-after-stop", "cutout-syntax", "cutout-empty", "option"],
)
def test_exit_2_on_bad_input(served, tmp_path, cli, change, message):
    extra = change.pop("extra", [])
    code, out, err = cli(_args(served, tmp_path, *extra, **change))
    assert code == 2
    assert message in one_error_line(err)
    assert out == ""
    assert not (tmp_path / "irradiance.csv").exists()


@pytest.mark.parametrize(
    "option", [["--part-size", "0"], ["--workers", "0"], ["--part-size", "four"]]
)
def test_exit_2_on_a_bad_number(served, tmp_path, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(_args(served, tmp_path, *option))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"intake-helio irradiance: error: argument {option[0]}: "
        f"{option[1]!r} is not a positive whole number"
    )
    assert not (tmp_path / "parts.zarr").exists()


def test_exit_2_when_out_is_a_file(served, tmp_path, cli):
    target = tmp_path / "results"
    target.write_text("not a directory")
    code, out, err = cli(_args(served, target))
    assert code == 2 and out == ""
    assert f"--out '{target}' is a file; expected a directory" in one_error_line(err)
    assert target.read_text() == "not a directory"


def test_exit_2_on_resume_with_other_arguments(served, tmp_path, cli):
    _, data = served
    assert cli(_args(served, tmp_path, stop=data.times[8]))[0] == 0
    assert saved_parts(tmp_path / "parts.zarr") == [0, 1]
    parts = _files(tmp_path / "parts.zarr")
    code, _, err = cli(_args(served, tmp_path, "--resume", "--units", "DN", stop=data.times[8]))
    assert code == 2
    line = one_error_line(err)
    assert "holds parts of a different run (differs in normalize)" in line
    assert "drop --resume" in line
    assert _files(tmp_path / "parts.zarr") == parts


def test_exit_1_when_the_bucket_is_unavailable(served, tmp_path, cli):
    args = _args(served, tmp_path)
    args[1] = "s3://helio-down/"
    code, out, err = cli(args)
    assert code == 1 and out == ""
    line = one_error_line(err)
    assert "s3://helio-down/" in line and "1400" in line and "down for maintenance" in line


def test_exit_4_when_the_server_holds_a_malformed_catalog(served, tmp_path, cli):
    args = _args(served, tmp_path)
    args[1] = "s3://helio-broken/"
    code, out, err = cli(args)
    assert code == 4 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("intake-helio: unexpected data: "), lines[0]
    assert "s3://helio-broken/catalog.json" in lines[0]


@pytest.mark.parametrize(
    ("argv", "missing", "requirement"),
    [
        (["demo"], "moto", "moto[server]"),
        (["gateway-server"], "dask_gateway_server", "dask-gateway-server"),
    ],
)
def test_commands_without_the_demo_extra_name_it(argv, missing, requirement):
    # the package hidden as if not installed (a None entry makes every import of it fail)
    code = (
        f"import sys; sys.modules[{missing!r}] = None; "
        "from intake_helio.app.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("intake-helio: error: ")
    assert 'pip install "intake-helio[demo]"' in lines[0] and requirement in lines[0]


# ----------------------------------------------------------------------------- files
def test_files_written(reference):
    _, out = reference
    table = _read_csv(out / "irradiance.csv")
    assert list(table.columns) == [
        "time",
        "frame_time",
        "datakey",
        "irradiance",
        "units",
        "n_valid",
        "status",
    ]
    assert len(table) == FRAMES
    assert set(table["units"]) == {"DN/s"}  # the job's default
    assert (table["frame_time"] == table["time"]).all()  # one dataset: its own times
    times = pd.to_datetime(table["time"], format="%Y-%m-%dT%H:%M:%S.%f")
    with xr.open_dataset(out / "irradiance.nc") as nc:
        nc = nc.load()
    np.testing.assert_array_equal(nc["time"].to_numpy(), times.to_numpy())
    np.testing.assert_array_equal(nc["irradiance"].to_numpy(), table["irradiance"].to_numpy())
    np.testing.assert_array_equal(nc["n_valid"].to_numpy(), table["n_valid"].to_numpy())
    assert nc["status"].to_numpy().tolist() == table["status"].tolist()
    assert nc["datakey"].to_numpy().tolist() == table["datakey"].tolist()
    assert nc["irradiance"].attrs["units"] == "DN/s"
    np.testing.assert_array_equal(nc["frame_time"].to_numpy(), times.to_numpy())
    assert nc.attrs["dataset"] == "aia_0094"
    png = out / "irradiance.png"
    assert png.stat().st_size > 10_000
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 600
        assert img.info["Software"].startswith("Matplotlib")


# ----------------------------------------------------------------------------- resume
def _interrupt_then_resume(served, reference, tmp_path, cli, sig):
    out = tmp_path / "out"
    store = out / "parts.zarr"
    returncode, stdout, stderr = stop_slow_run(
        tmp_path, _args(served, out), sig, lambda: len(saved_parts(store)) >= 2
    )
    done = saved_parts(store)
    assert 2 <= len(done) < FRAMES // PART, "the run was not interrupted part-way"
    # each saved part's data and record (one chunk of each per part)
    names = [f"{v}/{n}" for n in done for v in ("mean", "count", "status", "_resume/part_done")]
    saved = {
        name: ((store / name).stat().st_mtime_ns, (store / name).read_bytes()) for name in names
    }
    assert not (out / "irradiance.csv").exists()

    code, summary, err = cli([*_args(served, out), "--resume"])  # in-process: faster
    assert code == 3, err
    computed = int(re.search(r"computed: (\d+) frames", summary).group(1))
    assert computed == FRAMES - PART * len(done)
    # the parts saved before the interruption were not recomputed or rewritten
    for name, (mtime, raw) in saved.items():
        assert (store / name).stat().st_mtime_ns == mtime
        assert (store / name).read_bytes() == raw
    assert saved_parts(store) == list(range(FRAMES // PART))
    assert not list(out.glob(".*tmp*"))

    _, ref = reference
    assert (out / "irradiance.csv").read_bytes() == (ref / "irradiance.csv").read_bytes()
    with xr.open_dataset(out / "irradiance.nc") as a, xr.open_dataset(ref / "irradiance.nc") as b:
        xr.testing.assert_identical(a.load(), b.load())
    return returncode, stdout, stderr


def test_resume_after_ctrl_c(served, reference, tmp_path, cli):
    code, stdout, stderr = _interrupt_then_resume(served, reference, tmp_path, cli, signal.SIGINT)
    assert code == 130
    assert stdout == ""
    assert stderr.strip() == "intake-helio: interrupted; rerun with --resume to continue"


def test_resume_after_kill(served, reference, tmp_path, cli):
    code, _, _ = _interrupt_then_resume(served, reference, tmp_path, cli, signal.SIGKILL)
    assert code == -signal.SIGKILL


@pytest.mark.parametrize("when", ["workers starting", "frames running"])
def test_ctrl_c_on_a_local_cluster_prints_one_line_and_leaves_no_process(served, tmp_path, when):
    """Ctrl-C as a terminal sends it: to the whole process group, the CLI and its workers.

    The worker processes used to die of it with two tracebacks each (and a Ctrl-C while they
    started left a half-built cluster to atexit): ~70 lines before the message.
    """
    wrapper = tmp_path / "slow_cli.py"
    wrapper.write_text(SLOW_CLI)
    out = tmp_path / "out"
    args = _args(served, out, "--workers", "2")
    args[args.index("--cluster") + 1] = "local"
    # a session of its own: the group's Ctrl-C reaches no test process
    proc = subprocess.Popen(
        [sys.executable, str(wrapper), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen: dict[int, tuple[float, str]] = {}

    def workers() -> list[str]:
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                seen[child.pid] = (child.create_time(), " ".join(child.cmdline()))
            except psutil.Error:
                pass
        return [cmd for _, cmd in seen.values() if "spawn_main" in cmd]

    try:
        deadline = time.monotonic() + 60
        while (
            len(workers()) < 2
            if when == "workers starting"
            else not saved_parts(out / "parts.zarr")
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"not {when} within 60 s"
            time.sleep(0.01)
        assert len(workers()) >= 2, seen  # worker processes (spawned), not threads
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        assert proc.returncode == 130, stderr
        assert stdout == ""
        lines = stderr.strip().splitlines()
        assert lines[-1] == "intake-helio: interrupted; rerun with --resume to continue", stderr
        assert "Traceback" not in stderr and "distributed" not in stderr, stderr
        # the message alone, as a rule; at most a warning of ours besides
        assert len(lines) <= 3, stderr
        saved = len(saved_parts(out / "parts.zarr"))
        if when == "workers starting":
            assert saved == 0  # held back while the cluster starts, then no frame read
        else:
            assert 1 <= saved < FRAMES // PART, "the run was not interrupted part-way"
        # workers and nannies are shut down before the command exits; multiprocessing's
        # resource tracker ends by itself just after its parent
        assert not [c for c in _left_over(seen) if "spawn_main" in c]
        assert _left_over(seen, grace=10) == []
    finally:
        for pid, (created, _) in seen.items():  # nothing left to another test
            with contextlib.suppress(psutil.Error):
                child = psutil.Process(pid)
                if child.create_time() == created:
                    child.kill()


# ----------------------------------------------------------------------------- secrets
def test_secret_never_written_or_printed(served, reference, tmp_path, cli):
    proc, out = reference
    assert proc.returncode == 3
    for text in (proc.stdout, proc.stderr):
        assert CANARY_SECRET not in text and CANARY_KEY not in text
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"irradiance.csv", "irradiance.nc"}
    assert out / "parts.zarr" / "_resume" / ".zattrs" in files  # the run's identity
    for path in files:
        raw = path.read_bytes()
        assert CANARY_SECRET.encode() not in raw, path
        assert CANARY_KEY.encode() not in raw, path
    with xr.open_dataset(out / "irradiance.nc") as nc:
        attrs = [nc.attrs] + [nc[v].attrs for v in nc.variables]
    assert CANARY_SECRET not in repr(attrs)

    # nor in the message of a failed run
    code, stdout, stderr = cli(
        _args(served, tmp_path, dataset="nope", key=CANARY_KEY, secret=CANARY_SECRET)
    )
    assert code == 2
    assert CANARY_SECRET not in stdout + stderr and CANARY_KEY not in stdout + stderr


# ----------------------------------------------------------------------------- demo
def _run_watching(args, log: Path, interrupt: str | None = None, timeout=300):
    """Run the CLI, recording its descendant processes -> (code, output, {pid: (created, cmd)}).

    With ``interrupt``, SIGINT is sent as soon as a descendant whose command line holds that
    text is seen.
    """
    seen: dict[int, tuple[float, str]] = {}
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intake_helio.app.cli", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the command did not finish"
            try:
                children = parent.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    # read again each time: a process caught between fork and exec still
                    # shows its parent's command line
                    cmd = " ".join(child.cmdline())
                    created = seen[child.pid][0] if child.pid in seen else child.create_time()
                except psutil.Error:
                    continue
                if seen.get(child.pid, (0, ""))[1] == cmd:
                    continue
                seen[child.pid] = (created, cmd)
                if interrupt and interrupt in seen[child.pid][1]:
                    proc.send_signal(signal.SIGINT)
                    interrupt = None
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, log.read_text(), seen


def _left_over(seen: dict[int, tuple[float, str]], grace: float = 0.0) -> list[str]:
    """Descendants still running (not zombies) ``grace`` seconds after the command exited."""
    deadline = time.monotonic() + grace
    while True:
        alive = []
        for pid, (created, cmd) in seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(cmd)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def _check_demo(out: Path, code: int, output: str, seen) -> None:
    assert code == 0, output
    assert "Traceback" not in output
    # two channels (aia_0094, aia_0171) of 12 frames, one deliberately corrupt file each
    assert "\nframes: 24  ok: 22  failed: 2\n" in output
    assert "  channel aia_0094: frames: 12  ok: 11  failed: 1" in output
    assert "  channel aia_0171: frames: 12  ok: 11  failed: 1" in output
    assert "failed (truncated): 2" in output
    assert "are exactly the deliberately corrupt file(s)" in output
    # the magnetometer's CDF files through the catalog, checked: second panel of the PNG
    assert "\nmag_demo: 2 CDF files, 2880 records through the catalog; " in output
    assert "1 minute(s) of fill (data gap) (max relative difference" in output
    for name in ("irradiance.csv", "irradiance.nc", "irradiance.png", "magnetometer.csv"):
        assert (out / name).stat().st_size > 0
    table = _read_csv(out / "irradiance.csv")
    assert len(table) == 24
    assert table["channel"].tolist() == ["aia_0094", "aia_0171"] * 12
    assert any("intake_helio.testing.local_s3" in cmd for _, cmd in seen.values()), seen
    # the S3 server is stopped before the command exits; multiprocessing's resource tracker
    # (with a local cluster) ends by itself just after its parent
    assert not [c for c in _left_over(seen) if "intake_helio.testing.local_s3" in c]
    assert _left_over(seen, grace=10) == []


def test_demo_without_cluster(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--frames", "12", "--size", "64", "--out", str(out), "--cluster", "none"]
    code, output, seen = _run_watching([*args, "--no-progress"], tmp_path / "log")
    _check_demo(out, code, output, seen)


@pytest.mark.slow
def test_demo_on_a_local_cluster(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--frames", "12", "--size", "64", "--out", str(out)]
    code, output, seen = _run_watching(
        [*args, "--cluster", "local", "--workers", "2"], tmp_path / "log"
    )
    _check_demo(out, code, output, seen)
    assert sum("distributed" in cmd or "spawn_main" in cmd for _, cmd in seen.values()) >= 2


def test_demo_interrupted_while_its_s3_server_starts(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--frames", "12", "--size", "64", "--out", str(out), "--cluster", "none"]
    code, output, seen = _run_watching(
        args, tmp_path / "log", interrupt="intake_helio.testing.local_s3"
    )
    assert code == 130, output
    assert any("intake_helio.testing.local_s3" in cmd for _, cmd in seen.values())
    assert _left_over(seen) == []  # stopped before the command exited
    time.sleep(1)  # an orphaned server would print a BrokenPipeError traceback by now
    output = (tmp_path / "log").read_text()
    assert output.strip().splitlines() == ["intake-helio: interrupted"]


# ----------------------------------------------------------------------------- output directory
def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_resume_of_an_older_version_s_parts_uses_only_the_run_s_own(served, tmp_path, cli):
    _, data = served
    stop = data.times[8]
    assert cli(_args(served, tmp_path, stop=stop))[0] == 0
    result = (tmp_path / "irradiance.csv").read_bytes()
    # the run's parts as an older version saved them (CSV in parts/), and no Zarr store
    identity = legacy_identity(tmp_path / "parts.zarr")
    shutil.rmtree(tmp_path / "parts.zarr")
    table = read_part(tmp_path / "irradiance.csv")
    parts = write_legacy_parts(tmp_path, identity, {0: table.iloc[:4], 1: table.iloc[4:]})
    header, *rows0 = (parts / "part-000000.csv").read_text().splitlines(keepends=True)
    _, *rows1 = (parts / "part-000001.csv").read_text().splitlines(keepends=True)
    # next to the run's own manifest: a part of another channel (171 A) beyond the run, and
    # part 1 with 8 rows (its 4 frames after those of part 0)
    other = [r.replace("/0094/", "/0171/").replace("_94a_", "_171a_") for r in rows0]
    assert other != rows0
    (parts / "part-000099.csv").write_text("".join([header, *other]))
    (parts / "part-000001.csv").write_text("".join([header, *rows0, *rows1]))

    code, out, err = cli(_args(served, tmp_path, "--resume", stop=stop))
    assert code == 0, err
    assert "frames: 8  ok: 8  failed: 0" in out
    assert re.search(r"computed: 4 frames", out)  # part 1 only
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert sorted(notes) == [
        f"note: {parts / 'part-000001.csv'} not used: it has 8 rows; part 1 holds 4 frames; "
        "removed, so part 1 is computed again",
        f"note: {parts / 'part-000099.csv'} not used: part number 99 is outside this run's "
        "parts (0..1); removed",
    ]
    assert (tmp_path / "irradiance.csv").read_bytes() == result
    assert not parts.exists()  # imported into the Zarr store, then deleted
    assert saved_parts(tmp_path / "parts.zarr") == [0, 1]


@pytest.mark.parametrize(
    "case",
    ["foreign-parts", "symlinked-parts", "foreign-store", "symlinked-store", "symlinked-csv"],
)
def test_out_dir_guard_exits_2_and_touches_nothing(served, tmp_path, cli, case):
    _, data = served
    out = tmp_path / "out"
    out.mkdir()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "part-000000.csv").write_text("their data\n")
    (theirs / "irradiance.csv").write_text("their result\n")
    runs: tuple[list[str], ...] = ([], ["--resume"])
    if case == "foreign-parts":  # someone else's parts/ (no manifest of ours): read on resume
        theirs = theirs.rename(out / "parts")
        expected, runs = f"{theirs} holds files and no manifest.json", (["--resume"],)
    elif case == "symlinked-parts":
        (out / "parts").symlink_to(theirs, target_is_directory=True)
        expected = f"parts directory '{out / 'parts'}' is a symbolic link (to '{theirs}')"
        runs = (["--resume"],)
    elif case == "foreign-store":  # someone else's files where the parts are saved
        theirs = theirs.rename(out / "parts.zarr")
        expected = f"{theirs} holds files that are not a Zarr store"
    elif case == "symlinked-store":
        (out / "parts.zarr").symlink_to(theirs, target_is_directory=True)
        expected = f"Zarr store '{out / 'parts.zarr'}' is a symbolic link (to '{theirs}')"
    else:
        (out / "irradiance.csv").symlink_to(theirs / "irradiance.csv")
        expected = f"output file '{out / 'irradiance.csv'}' is a symbolic link"
    before = _files(theirs)
    for extra in runs:
        code, stdout, err = cli(_args(served, out, *extra, stop=data.times[8]))
        assert code == 2 and stdout == ""
        line = one_error_line(err)
        assert expected in line and "choose another --out" in line
    assert _files(theirs) == before
    assert not (out / "irradiance.nc").exists()
    if case == "symlinked-csv":
        assert not (out / "parts.zarr").exists()  # refused before anything was written
    if case.endswith("-parts"):  # without --resume parts/ is not the job's: never read
        assert cli(_args(served, out, stop=data.times[8]))[0] == 0
        assert _files(theirs) == before


# ----------------------------------------------------------------------------- calibration
def _aiapy_table():
    aiapy = pytest.importorskip("aiapy")
    data = Path(aiapy.__file__).parent / "tests" / "data"
    return data / "aia_V8_20171210_050627_response_table.txt"


def test_correct_degradation_records_its_table_and_resume_refuses_another(served, tmp_path, cli):
    import warnings

    import astropy.units as u
    from aiapy.calibrate import degradation
    from aiapy.calibrate.util import get_correction_table
    from astropy.time import Time

    table = _aiapy_table()
    s3, data = served
    stop = data.times[8]
    plain_out, out = tmp_path / "plain", tmp_path / "corrected"
    assert cli(_args(served, plain_out, stop=stop))[0] == 0
    code, _, err = cli(
        _args(served, out, "--correct-degradation", "--correction-table", str(table), stop=stop)
    )
    assert code == 0, err
    plain, corrected = _read_csv(plain_out / "irradiance.csv"), _read_csv(out / "irradiance.csv")
    assert set(corrected["units"]) == {"DN/s, corrected for degradation"}
    (recorded,) = set(corrected["correction_table"])
    assert recorded.startswith(f"{table.name} (VER_NUM 8; rows ")
    assert "correction_table" not in plain
    fs = s3.filesystem()
    headers = [fits.getheader(io.BytesIO(fs.cat_file(k)), 1) for k in data.datakeys[:8]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = get_correction_table(table)
        factors = [
            degradation(h["WAVELNTH"] * u.angstrom, Time(h["DATE-OBS"].rstrip("Z")),
                        correction_table=tab).value[0]
            for h in headers
        ]  # fmt: skip
    np.testing.assert_allclose(corrected["irradiance"], plain["irradiance"] / factors, rtol=1e-6)
    with xr.open_dataset(out / "irradiance.nc") as nc:
        assert table.name in nc.attrs["correction_table"]
        assert nc["irradiance"].attrs["units"] == "DN/s, corrected for degradation"
    parts = _files(out / "parts.zarr")
    other = tmp_path / "aia_V8_copy_response_table.txt"
    shutil.copy(table, other)
    for extra in (["--correct-degradation", "--correction-table", str(other)], []):
        code, _, err = cli(_args(served, out, "--resume", *extra, stop=stop))
        assert code == 2
        assert "differs in correction_table" in one_error_line(err)
    assert _files(out / "parts.zarr") == parts
    code, _, err = cli(_args(served, out, "--resume", "--correct-degradation",
                             "--correction-table", str(table), stop=stop))  # fmt: skip
    assert code == 0, err
    assert "computed: 0 frames" in _
    code, _, err = cli(_args(served, tmp_path / "x", "--correct-degradation",
                             "--correction-table", str(tmp_path / "nope.txt")))  # fmt: skip
    assert code == 2 and "nope.txt" in one_error_line(err) and "no such file" in err
