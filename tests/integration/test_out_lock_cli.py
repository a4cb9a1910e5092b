"""One writer per ``--out``: two ``intake-helio`` runs on one directory, as real processes.

The session's local S3 server (moto on 127.0.0.1) holds a 16-frame demo dataset. A first
run (a subprocess of the real CLI whose frame reads wait for a gate file, so it is
certainly running) holds the directory; checked: a second ``irradiance`` and a ``reduce``
on it are refused at once (exit 2, naming the directory and the first's pid) and touch
nothing; a ``--resume --wait-lock`` waits for the first to end and then finds every part
saved; the first's result equals a clean run's. A lock left by a run killed with SIGKILL
is taken over; Ctrl-C of a run holding the lock releases it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from intake_helio.app.lock import LOCK_NAME
from intake_helio.testing.demo_data import write_demo_dataset

FRAMES = 16
PART = 4
# the real CLI, with every frame read waiting until the file $GATE exists: the run holds
# its --out (and has written its manifest) for as long as the test keeps the gate shut
GATED_CLI = """
import os, sys, time
import intake_helio.frames.tasks as tasks
read = tasks.MapTask.item
def gated_one(*args, **kwargs):
    while not os.path.exists(os.environ["GATE"]):
        time.sleep(0.02)
    return read(*args, **kwargs)
if __name__ == "__main__":
    tasks.MapTask.item = gated_one
    from intake_helio.app.cli import main
    sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def served(s3_server):
    """(LocalS3, DemoDataset): 16 frames of 32x32 (one of them corrupt) in the session's server."""
    s3_server.reset()
    data = write_demo_dataset("s3://helio-demo/", s3_server.storage_options, frames=FRAMES, size=32)
    yield s3_server, data
    s3_server.reset()


def _args(served, out, *extra, command="irradiance"):
    s3, data = served
    return [
        command,
        data.root,
        data.dataset_id,
        "--start",
        str(data.start),
        "--stop",
        str(data.stop),
        "--out",
        str(out),
        "--cluster",
        "none",
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


@pytest.fixture
def gated(tmp_path):
    """``start(args, gate) -> proc``: a gated CLI run holding its ``--out`` (its lock file
    names it, its manifest is written); every process started is ended at teardown."""
    wrapper = tmp_path / "gated_cli.py"
    wrapper.write_text(GATED_CLI)
    started: list[subprocess.Popen] = []

    def start(args, gate):
        proc = subprocess.Popen(
            [sys.executable, str(wrapper), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GATE": str(gate)},
        )
        started.append(proc)
        lock, manifest = _out_of(args) / LOCK_NAME, _out_of(args) / "parts" / "manifest.json"
        deadline = time.monotonic() + 60
        while not manifest.exists() or f'"pid": {proc.pid},' not in lock.read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run took no lock within 60 s"
            time.sleep(0.02)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _out_of(args) -> Path:
    return Path(args[args.index("--out") + 1])


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_second_run_is_refused_and_the_first_s_result_is_whole(served, tmp_path, cli, gated):
    clean = tmp_path / "clean"
    clean_code, _, err = cli(_args(served, clean))
    assert clean_code in (0, 3), err
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = gated(_args(served, out), gate)
    before = {p.name: p.read_bytes() for p in (out / "parts").iterdir()}

    for command in ("irradiance", "reduce"):
        for extra in ([], ["--resume"]):
            code, stdout, err = cli(_args(served, out, *extra, command=command))
            assert code == 2 and stdout == "", err
            line = _error_line(err)
            assert line.startswith("intake-helio: error: ")
            assert f"--out {str(out)!r} is in use by another intake-helio run" in line
            assert f"(pid {first.pid} on host " in line and LOCK_NAME in line
            assert "--wait-lock" in line
    assert {p.name: p.read_bytes() for p in (out / "parts").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "parts"]  # no reduce files

    # a run that waits: the gate opens 1 s after it started waiting; it then resumes the
    # first's directory and finds every part saved
    opener = threading.Timer(1.0, gate.touch)
    opener.start()
    t0 = time.monotonic()
    try:
        code, stdout, err = cli(_args(served, out, "--resume", "--wait-lock", "60"))
    finally:
        opener.cancel()
    waited = time.monotonic() - t0
    assert waited > 1.0
    stdout_first, err_first = first.communicate(timeout=60)
    assert first.returncode == clean_code, err_first
    assert f"frames: {FRAMES}" in stdout_first
    assert re.search(rf"computed: {FRAMES} frames", stdout_first)
    assert code == clean_code, err
    assert re.search(r"computed: 0 frames", stdout)  # every part was the first's, whole
    assert (out / "irradiance.csv").read_bytes() == (clean / "irradiance.csv").read_bytes()
    assert not (out / LOCK_NAME).exists()


def test_a_killed_run_s_lock_is_taken_over(served, tmp_path, cli, gated):
    out = tmp_path / "out"
    first = gated(_args(served, out), tmp_path / "never")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert f'"pid": {first.pid},' in (out / LOCK_NAME).read_text()  # left behind
    code, stdout, err = cli(_args(served, out, "--resume"))
    assert code in (0, 3), err
    assert f"frames: {FRAMES}" in stdout
    assert not (out / LOCK_NAME).exists()


def test_ctrl_c_releases_the_lock(served, tmp_path, gated):
    out = tmp_path / "out"
    first = gated(_args(served, out), tmp_path / "never")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "interrupted; rerun with --resume" in err
    assert not (out / LOCK_NAME).exists()
