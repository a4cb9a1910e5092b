"""Faults and bad input never lose a frame or leak a secret (issue 7).

Starts a moto S3 server in a child process (``LocalS3(process=True)``), writes small
synthetic AIA frames with ``write_demo_dataset``, and reads them back through a
:class:`~intake_helio.testing.fault_proxy.FaultProxy` on 127.0.0.1 with the real job path
(``run_irradiance_job``: catalog -> index -> lazy frames -> ``irradiance`` -> saved CSV,
netCDF and parts) on a ``LocalCluster`` of worker processes. Each scenario injects one kind
of fault:

- transient faults (503 SlowDown burst, 500 at a rate, connection resets, stalls past the
  read timeout, truncated bodies): every frame must get exactly the value of the clean run;
- permanent bad objects (missing key, zero bytes, not FITS, truncated FITS, no image HDU,
  another shape, no EXPTIME with ``normalize=True``) and a 403 AccessDenied on one key:
  each such frame must carry its own reason, every other frame its value, and the denied
  key must not be retried at all, let alone anonymously (the proxy counts unsigned requests);
- a worker process SIGKILLed mid-run (local cluster, and a dask-gateway cluster from a
  ``LocalGateway``): every frame valued exactly as in the clean run;
- the CLI SIGKILLed mid-run, then ``--resume``: the same CSV, byte for byte, as the clean run;
- a year index (129,758 rows) with 1 % bad rows: every bad row reported by file and line
  with ``errors="report"``, the first one raised by default;
- hostile content (issue 14, ``benchmarks/hostile.py``, also runnable alone): datakeys and
  indexes that name local files or loopback hosts, endless and lying servers, a zip bomb, a
  silent host, frames that declare 80 GB or hold 20,000 HDUs, out-of-range index rows,
  credentials in URLs, a read that kills its worker, and a hostile output directory
  (``--no-hostile`` leaves them out, ``--no-worker-death`` only the worker case).

Every read uses canary credentials (access key, secret, session token; the gateway has a
canary password). Everything a user could see is searched for them: this process's and the
worker processes' stdout/stderr (captured at the file-descriptor level), log records of
``intake_helio``, ``distributed``, ``s3fs`` and ``dask_gateway`` at DEBUG, the workers'
and scheduler's logs, the gateway server's log, reprs of results, and every file written.

Columns: ``injected`` faults (proxy faults, broken objects, kills), ``survived`` frames hit
by a fault (or re-read after a kill, or kept across an interrupted run) that still got their
value, ``retried`` GET requests for frames beyond those of the clean run (one per frame plus
the probe of the first one), whichever layer repeated them (s3fs, botocore or
``fits_frames.retry_io``, whose own count is in the note), ``lost`` frames whose outcome is
not the expected one (must be 0), ``secrets`` canary strings found (must be 0). The exit
status is 1 if any frame is lost or any secret is found.

    python benchmarks/faults.py [--frames 24] [--size 64] [--no-gateway] [--no-cli]
                                [--no-hostile] [--no-worker-death]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultkit import (
    CANARY_KEY,
    CANARY_PASSWORD,
    CANARY_SECRET,
    CANARY_TOKEN,
    CREDENTIALS,
    Capture,
    Row,
    cluster_logs,
    count_secrets,
    files_text,
    pickles,
    print_table,
)

FITS = r"\.fits$"
# s3fs/botocore settings that turn a stall into a timeout quickly (the brief's values)
FAST_TIMEOUTS = {
    "config_kwargs": {"read_timeout": 2, "connect_timeout": 2, "retries": {"max_attempts": 2}}
}
PART = 4
PACE = 0.3  # seconds each frame GET is held in the kill scenarios, so a kill lands mid-run
INDEX_ROWS = 129_758


# --------------------------------------------------------------------------- helpers
def _retry_stats() -> dict:
    import intake_helio.fits.frame as fits_frames

    return dict(fits_frames.RETRY_STATS)


def retry_io_count(client) -> int:
    """``fits_frames.RETRY_STATS["retried"]`` of this process (which probes the first frame)
    plus the worker processes alive now."""
    here = _retry_stats()["retried"]
    try:
        return here + sum(v["retried"] for v in client.run(_retry_stats).values())
    except Exception:
        return here


def frame_path(datakey: str) -> str:
    return "/" + datakey.split("://", 1)[1]


def proxy_counts(stats: dict, datakeys) -> tuple[dict, dict]:
    by_key = stats["by_key"]
    requests = {k: by_key.get(frame_path(k), {}).get("requests", 0) for k in datakeys}
    faults = {k: by_key.get(frame_path(k), {}).get("faults", 0) for k in datakeys}
    return requests, faults


def judge(result, expected_status: list[str], expected_value: np.ndarray, exact: bool) -> int:
    """Frames whose outcome differs from the expected one (missing frames count too)."""
    status = result["status"].to_numpy().astype(str)
    value = result["irradiance"].to_numpy()
    lost = abs(len(expected_status) - len(status))
    for i in range(min(len(status), len(expected_status))):
        if expected_status[i] == "ok":
            if exact:
                right = value[i] == expected_value[i]
            else:
                right = np.isclose(value[i], expected_value[i], rtol=1e-12, atol=0)
            lost += status[i] != "ok" or not right
        elif status[i] != expected_status[i]:
            lost += 1
    return lost


def reasons_note(result) -> str:
    status = pd.Series(result["status"].to_numpy().astype(str))
    bad = status[status != "ok"].value_counts()
    return ", ".join(f"{k}: {v}" for k, v in bad.items())


# --------------------------------------------------------------------------- context
@dataclass
class Ctx:
    s3: Any
    capture: Capture
    tmp: Path
    demo: Any
    bad_demo: Any
    bad_expected: list[str]
    truth: np.ndarray
    clean: np.ndarray | None = None
    baseline: dict | None = None  # requests per frame in the clean run (probe included)
    clean_csv: bytes = b""
    client: Any = None

    def options(self, endpoint_url: str, **extra: Any) -> dict:
        return {"endpoint_url": endpoint_url, **CREDENTIALS, **extra}

    def retried(self, requests: dict) -> int:
        """Requests beyond those of the clean run (1 per frame, +1 for the probed frame)."""
        base = self.baseline or {}
        return sum(max(0, r - base.get(k, 1)) for k, r in requests.items())


def run_job(ctx: Ctx, demo, out: Path, so: dict, normalize: bool = False):
    from intake_helio.app.job import run_irradiance_job

    return run_irradiance_job(
        demo.root,
        demo.dataset_id,
        demo.start,
        demo.stop,
        str(out),
        storage_options=so,
        cluster_kind=None,  # the active client: this benchmark's cluster
        normalize=normalize,
        part_size=PART,
        progress=False,
        plot=False,
    )


def frame_scenario(ctx: Ctx, name: str, rules, *, seed: int = 0, extra=None) -> Row:
    """The clean demo through a proxy with ``rules``; every frame must equal the clean run."""
    from intake_helio.testing.fault_proxy import FaultProxy

    demo = ctx.demo
    out = ctx.tmp / re.sub(r"\W+", "-", name).strip("-")
    mark = ctx.capture.mark()
    r0 = retry_io_count(ctx.client)
    t0 = time.perf_counter()
    with FaultProxy(ctx.s3.endpoint_url, rules, seed=seed) as proxy:
        result, _ = run_job(ctx, demo, out, ctx.options(proxy.endpoint_url, **(extra or {})))
        stats = proxy.stats
    seconds = time.perf_counter() - t0
    retried_io = retry_io_count(ctx.client) - r0
    n = len(demo.datakeys)
    clean = ctx.clean is None
    reference = ctx.truth if clean else ctx.clean
    lost = judge(result, ["ok"] * n, reference, exact=not clean)
    requests, faults = proxy_counts(stats, demo.datakeys)
    if clean:
        ctx.clean = result["irradiance"].to_numpy().copy()
        ctx.clean_csv = (out / "irradiance.csv").read_bytes()
        ctx.baseline = requests
    keys = result["datakey"].to_numpy().astype(str)
    status = dict(zip(keys, result["status"].to_numpy(), strict=True))
    survived = sum(1 for k in demo.datakeys if faults[k] and status.get(k) == "ok")
    retried = ctx.retried(requests)
    secrets = count_secrets(
        ctx.capture.since(mark), cluster_logs(ctx.client), files_text(out), result, result.attrs
    )
    bad_files = pickles(out)
    note = f"retry_io {retried_io}" + (f"; {reasons_note(result)}" if reasons_note(result) else "")
    if bad_files:
        lost += len(bad_files)
        note += f"; PICKLE FILES {bad_files}"
    return Row(
        name,
        n,
        int((result["status"] == "ok").sum()),
        int((result["status"] != "ok").sum()),
        stats["faults"],
        survived,
        retried,
        lost,
        secrets,
        seconds,
        note,
    )


def bad_objects_scenario(ctx: Ctx) -> Row:
    from intake_helio.testing.fault_proxy import FaultProxy

    demo = ctx.bad_demo
    out = ctx.tmp / "bad-objects"
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with FaultProxy(ctx.s3.endpoint_url, []) as proxy:
        result, _ = run_job(ctx, demo, out, ctx.options(proxy.endpoint_url), normalize=True)
    seconds = time.perf_counter() - t0
    exptime = 2.9  # write_demo_dataset's EXPTIME
    expected = np.array(demo.expected_mean) / exptime
    lost = judge(result, ctx.bad_expected, expected, exact=False)
    got = result["status"].to_numpy().astype(str)
    wanted = {r for r in ctx.bad_expected if r != "ok"}
    distinct = len({g for g in got if g != "ok"})
    secrets = count_secrets(
        ctx.capture.since(mark), cluster_logs(ctx.client), files_text(out), result
    )
    return Row(
        "permanent bad objects (normalize)",
        len(demo.datakeys),
        int((got == "ok").sum()),
        int((got != "ok").sum()),
        len(wanted),
        0,
        0,
        lost,
        secrets,
        seconds,
        f"{distinct} distinct reasons: {', '.join(r for r in got if r != 'ok')}",
    )


def denied_scenario(ctx: Ctx) -> Row:
    """403 AccessDenied on one key: reason named, the key in the error, no (anonymous) retry."""
    import intake_helio as ih
    from intake_helio.testing.fault_proxy import FaultProxy, FaultRule

    demo = ctx.demo
    # past the frames the job probes for the shape (intake_helio.shape-probes: 5)
    victim = demo.datakeys[max(len(demo.datakeys) // 3, 6)]
    rule = FaultRule("status", status=403, code="AccessDenied", match=re.escape(frame_path(victim)))
    out = ctx.tmp / "denied"
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with FaultProxy(ctx.s3.endpoint_url, [rule]) as proxy:
        so = ctx.options(proxy.endpoint_url)
        result, _ = run_job(ctx, demo, out, so)
        # the same frame with on_error="raise": a FrameReadError that names the key
        df = pd.DataFrame({"start": [demo.start], "datakey": [victim]})
        message = ""
        try:
            ih.open_frames(df, storage_options=so).compute()
        except ih.FrameReadError as exc:
            message = f"{exc!s} {exc!r}"
        stats = proxy.stats
    seconds = time.perf_counter() - t0
    expected = ["permission denied" if k == victim else "ok" for k in demo.datakeys]
    lost = judge(result, expected, ctx.clean, exact=True)
    requests, _ = proxy_counts(stats, [victim])
    named = victim in message and "permission denied" in message
    # one request from the job, one from open_frames' probe; none retried, none unsigned
    ok = named and requests[victim] == 2 and stats["unsigned"] == 0
    lost += 0 if ok else 1
    secrets = count_secrets(
        ctx.capture.since(mark), cluster_logs(ctx.client), files_text(out), result, message
    )
    return Row(
        "403 AccessDenied on one key",
        len(demo.datakeys),
        int((result["status"] == "ok").sum()),
        int((result["status"] != "ok").sum()),
        stats["faults"],
        0,
        requests[victim] - 2,
        lost,
        secrets,
        seconds,
        f"key named in FrameReadError: {named}; requests to it {requests[victim]} "
        f"(job + probe); unsigned requests {stats['unsigned']}",
    )


def kill_scenario(ctx: Ctx, name: str, client, extra_logs=lambda: "") -> Row:
    """SIGKILL one worker process while the job runs; every frame must equal the clean run."""
    import psutil

    from intake_helio.testing.fault_proxy import FaultProxy, FaultRule

    demo = ctx.demo
    out = ctx.tmp / re.sub(r"\W+", "-", name).strip("-")
    parts = out / "parts.zarr" / "_resume" / "part_done"  # one file per saved part
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    pace = FaultRule("stall", delay=PACE, match=FITS)
    box: dict[str, Any] = {}
    with FaultProxy(ctx.s3.endpoint_url, [pace]) as proxy:
        so = ctx.options(proxy.endpoint_url)

        def work():
            try:
                box["result"] = run_job(ctx, demo, out, so)[0]
            except BaseException as exc:  # reported as lost frames below
                box["error"] = exc

        thread = threading.Thread(target=work, name="faults-kill-job")
        thread.start()
        deadline = time.monotonic() + 120
        while len(list(parts.glob("[0-9]*"))) < 1 and thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        pids = client.run(os.getpid)
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        victim_addr = (busy or sorted(pids))[0]
        victim = pids[victim_addr]
        saved_at_kill = len(list(parts.glob("[0-9]*")))
        psutil.Process(victim).send_signal(signal.SIGKILL)
        thread.join(300)
        stats = proxy.stats
    seconds = time.perf_counter() - t0
    n = len(demo.datakeys)
    total_parts = -(-n // PART)
    after = client.run(os.getpid)
    note = (
        f"killed pid {victim} with {saved_at_kill}/{total_parts} parts saved; "
        f"workers now {sorted(after.values())}; paced {PACE} s per GET"
    )
    result = box.get("result")
    if result is None:
        lost = n
        note += f"; job failed: {box.get('error')!r}"
        valued = reason = 0
    else:
        lost = judge(result, ["ok"] * n, ctx.clean, exact=True)
        valued = int((result["status"] == "ok").sum())
        reason = int((result["status"] != "ok").sum())
    if not 0 < saved_at_kill < total_parts or victim in after.values():
        note += "; KILL DID NOT LAND MID-RUN"
        lost += 1
    requests, _ = proxy_counts(stats, demo.datakeys)
    base = ctx.baseline or {}
    reread = [k for k, r in requests.items() if r > base.get(k, 1)]
    secrets = count_secrets(
        ctx.capture.since(mark), cluster_logs(client), extra_logs(), files_text(out), result
    )
    return Row(
        name, n, valued, reason, 1, len(reread), ctx.retried(requests), lost, secrets, seconds,
        note,
    )  # fmt: skip


def cli_interrupt_scenario(ctx: Ctx) -> Row:
    """The CLI SIGKILLed after 2 saved parts, then ``--resume``: the clean run's CSV."""
    from intake_helio.testing.fault_proxy import FaultProxy, FaultRule

    demo = ctx.demo
    out = ctx.tmp / "cli"
    parts = out / "parts.zarr" / "_resume" / "part_done"  # one file per saved part
    n = len(demo.datakeys)
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    with FaultProxy(ctx.s3.endpoint_url, [FaultRule("stall", delay=PACE, match=FITS)]) as proxy:
        args = [
            sys.executable, "-m", "intake_helio.app.cli", "irradiance", demo.root, demo.dataset_id,
            "--start", str(demo.start), "--stop", str(demo.stop), "--out", str(out),
            "--cluster", "none", "--no-progress", "--part-size", str(PART),
            "--endpoint-url", proxy.endpoint_url,
            "--storage-option", f"key={CANARY_KEY}",
            "--storage-option", f"secret={CANARY_SECRET}",
            "--storage-option", f"token={CANARY_TOKEN}",
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(list(parts.glob("[0-9]*"))) < 2 and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        saved = len(list(parts.glob("[0-9]*")))
        proc.send_signal(signal.SIGKILL)
        first_out, first_err = proc.communicate(timeout=60)
        proxy.set_rules([])
        resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
        requests, _ = proxy_counts(proxy.stats, demo.datakeys)
    seconds = time.perf_counter() - t0
    csv_path = out / "irradiance.csv"
    got = csv_path.read_bytes() if csv_path.exists() else b""
    table = pd.read_csv(io.BytesIO(got), keep_default_na=False) if got else pd.DataFrame()
    lost = 0 if got == ctx.clean_csv else max(1, n - len(table))
    m = re.search(r"computed: (\d+) frames", resumed.stdout)
    computed = int(m.group(1)) if m else -1
    total_parts = -(-n // PART)
    if not 0 < saved < total_parts or computed != n - PART * saved or resumed.returncode != 0:
        lost += 1
    secrets = count_secrets(
        ctx.capture.since(mark),
        first_out,
        first_err,
        resumed.stdout,
        resumed.stderr,
        files_text(out),
    )
    return Row(
        "CLI SIGKILL then --resume",
        n,
        int((table.get("status", pd.Series(dtype=str)) == "ok").sum()),
        int((table.get("status", pd.Series(dtype=str)) != "ok").sum()),
        1,
        PART * saved,
        ctx.retried(requests),
        lost,
        secrets,
        seconds,
        f"killed with {saved}/{total_parts} parts saved (exit {proc.returncode}); resume exit "
        f"{resumed.returncode} computed {computed}; CSV identical to clean: {got == ctx.clean_csv}"
        " (SIGINT: see tests/integration/test_cli_job.py)",
    )


def index_scenario(ctx: Ctx) -> Row:
    """129,758 index rows with 1 % bad rows (bad times, missing datakeys)."""
    from intake_helio.base.errors import IndexParseError
    from intake_helio.catalog.index import parse_index

    path = "s3://helio-faults/sdo/aia/registries/aia_0094_2020.csv"
    t = pd.date_range("2020-01-01", "2021-01-01", periods=INDEX_ROWS + 1)[:-1].floor("ms")
    start = np.asarray(t.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z", dtype=object)
    stop = (t + pd.Timedelta("4min")).strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    keys = np.array([f"s3://helio-faults/f_{i:06d}.fits" for i in range(INDEX_ROWS)], object)
    rng = np.random.default_rng(1)
    bad = np.sort(rng.choice(INDEX_ROWS, size=round(0.01 * INDEX_ROWS), replace=False))
    start[bad[::2]] = "2020-02-30T25:00:00Z"
    keys[bad[1::2]] = ""
    lines = ["# start, stop, datakey, filesize"]
    lines += [f"{a},{b},{k},{2880 * 5000}" for a, b, k in zip(start, stop, keys, strict=True)]
    data = ("\n".join(lines) + "\n").encode()
    expected_lines = [int(i) + 2 for i in bad]
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    df, reported = parse_index(data, path, "csv", errors="report")
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        parse_index(data, path, "csv")
        first = None
    except IndexParseError as exc:
        first = exc.line
    raise_seconds = time.perf_counter() - t1
    lines_ok = [b.line for b in reported] == expected_lines and all(
        b.file == path for b in reported
    )
    kept_ok = len(df) == INDEX_ROWS - len(bad) and not df["datakey"].eq("").any()
    lost = INDEX_ROWS - len(df) - len(reported)
    lost += (not lines_ok) + (not kept_ok) + (first != expected_lines[0])
    lost += (seconds > 3) + (raise_seconds > 3)
    return Row(
        "index: year with 1% bad rows",
        INDEX_ROWS,
        len(df),
        len(reported),
        len(bad),
        0,
        0,
        lost,
        count_secrets(ctx.capture.since(mark)),
        seconds,
        f"rows: report {seconds:.2f} s, every (file, line) right: {lines_ok}; "
        f"default raise at line {first} (first bad {expected_lines[0]}) in {raise_seconds:.2f} s",
    )


# --------------------------------------------------------------------------- setup
def write_bad_dataset(s3, frames: int, size: int):
    """A second dataset whose frames 2..8 are each broken in its own way."""
    from astropy.io import fits

    from intake_helio.testing.aia import frame_bytes, make_aia_frame
    from intake_helio.testing.demo_data import write_demo_dataset

    demo = write_demo_dataset(
        "s3://helio-bad/", s3.storage_options, frames=frames, size=size, corrupt=0, seed=3
    )
    fs = s3.filesystem()
    path = [k.split("://", 1)[1] for k in demo.datakeys]
    raw = fs.cat_file(path[0])
    expected = ["ok"] * frames
    fs.rm(path[2])
    expected[2] = "missing object"
    fs.pipe_file(path[3], b"")
    expected[3] = "empty file"
    fs.pipe_file(path[4], b"<Error>this is not a FITS file</Error>\n" * 100)
    expected[4] = "not FITS"
    fs.pipe_file(path[5], raw[: len(raw) * 2 // 3])
    expected[5] = "truncated"
    table = fits.BinTableHDU.from_columns([fits.Column("a", format="J", array=np.arange(8))])
    fs.pipe_file(path[6], frame_bytes(fits.HDUList([fits.PrimaryHDU(), table])))
    expected[6] = "no image HDU"
    fs.pipe_file(path[7], frame_bytes(make_aia_frame(demo.times[7], size=size // 2)))
    expected[7] = "shape mismatch"
    raw8 = fs.cat_file(path[8])  # EXPTIME card -> COMMENT: pixels stay byte for byte
    at = raw8.index(b"EXPTIME =")
    fs.pipe_file(path[8], raw8[:at] + b"COMMENT   EXPTIME removed".ljust(80) + raw8[at + 80 :])
    expected[8] = "no EXPTIME"
    return demo, expected


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames per dataset (>= 12)")
    ap.add_argument("--size", type=int, default=64, help="pixels per side")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-gateway", action="store_true", help="skip the dask-gateway scenario")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI interrupt scenario")
    ap.add_argument(
        "--no-hostile", action="store_true", help="skip the hostile-content rows (hostile.py)"
    )
    ap.add_argument(
        "--no-worker-death",
        action="store_true",
        help="skip the hostile row whose read kills its worker (a LocalCluster, ~25 s)",
    )
    args = ap.parse_args(argv)
    if args.frames < 12:
        ap.error("--frames must be >= 12")

    from intake_helio.testing.fault_proxy import FaultRule

    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="intake-helio-faults-") as tmp_name:
        tmp = Path(tmp_name)
        capture = Capture(tmp / "captured-output.txt")
        say = capture.say
        say(f"faults benchmark: {args.frames} frames of {args.size}x{args.size}, part size {PART}")
        capture.start()
        try:
            rows = _run(args, tmp, capture, say, FaultRule)
            if not args.no_hostile:
                rows += hostile_rows(args, tmp / "hostile", capture, say)
        finally:
            capture.stop()
        searched = capture.path.stat().st_size
        records = capture.records.lines
    print_table(rows, print)
    lost = sum(r.lost for r in rows)
    secrets = sum(r.secrets for r in rows)
    debug = sum(1 for line in records if line.startswith("DEBUG"))
    print(
        f"searched for secrets: {searched:,} bytes of stdout/stderr (this process and its "
        f"workers), {len(records):,} log records ({debug:,} at DEBUG), worker and scheduler "
        "logs, the gateway log, reprs and every file written"
    )
    print(
        f"total: {sum(r.injected for r in rows)} faults injected, {lost} frames lost, "
        f"{secrets} secrets found; {time.perf_counter() - started:.0f} s"
    )
    return 1 if lost or secrets or not debug else 0


def _run(args, tmp: Path, capture: Capture, say, FaultRule) -> list[Row]:
    import intake_helio as ih
    from intake_helio.testing.demo_data import write_demo_dataset
    from intake_helio.testing.local_s3 import LocalS3

    rows: list[Row] = []
    with LocalS3(process=True) as s3:
        t0 = time.perf_counter()
        demo = write_demo_dataset(
            "s3://helio-faults/", s3.storage_options, frames=args.frames, size=args.size,
            corrupt=0,
        )  # fmt: skip
        bad_demo, bad_expected = write_bad_dataset(s3, args.frames, args.size)
        took = time.perf_counter() - t0
        say(f"  local S3 up and {2 * args.frames} frames written in {took:.1f} s")
        ctx = Ctx(s3, capture, tmp, demo, bad_demo, bad_expected, np.array(demo.expected_mean))
        n = args.frames
        transient = [
            ("clean (no faults)", [], {}),
            (
                "503 SlowDown burst",
                [FaultRule("status", status=503, code="SlowDown", match=FITS, rate=0.5, times=n)],
                {},
            ),
            (
                "500 InternalError at rate 0.2",
                [FaultRule("status", status=500, code="InternalError", match=FITS, rate=0.2)],
                {},
            ),
            ("connection resets at rate 0.3", [FaultRule("reset", match=FITS, rate=0.3)], {}),
            (
                "stalls 5 s past a 2 s read timeout",
                [FaultRule("stall", delay=5, match=FITS, rate=0.3, times=n // 3)],
                FAST_TIMEOUTS,
            ),
            (
                "truncated bodies at rate 0.3",
                [FaultRule("truncate", fraction=0.5, match=FITS, rate=0.3)],
                {},
            ),
            (
                # s3fs tries a GET 5 times: 6 short bodies in a row reach retry_io
                "6 short bodies in a row on 2 keys",
                [
                    FaultRule("truncate", fraction=0.5, match=re.escape(frame_path(k)), times=6)
                    for k in demo.datakeys[n // 2 : n // 2 + 2]
                ],
                {},
            ),
        ]
        t0 = time.perf_counter()
        with ih.cluster("local", workers=args.workers, worker_cores=2) as client:
            ctx.client = client
            say(f"  local cluster up in {time.perf_counter() - t0:.1f} s")
            for seed, (name, rules, extra) in enumerate(transient, start=1):
                rows.append(frame_scenario(ctx, name, rules, seed=seed, extra=extra))
                say(f"  {name}: {rows[-1].seconds:.1f} s")
            rows.append(bad_objects_scenario(ctx))
            say(f"  {rows[-1].scenario}: {rows[-1].seconds:.1f} s")
            rows.append(denied_scenario(ctx))
            say(f"  {rows[-1].scenario}: {rows[-1].seconds:.1f} s")
            rows.append(kill_scenario(ctx, "worker killed (local cluster)", client))
            say(f"  {rows[-1].scenario}: {rows[-1].seconds:.1f} s")
        ctx.client = None
        if not args.no_gateway:
            rows.append(gateway_scenario(ctx, args, say))
            say(f"  {rows[-1].scenario}: {rows[-1].seconds:.1f} s")
        if not args.no_cli:
            rows.append(cli_interrupt_scenario(ctx))
            say(f"  {rows[-1].scenario}: {rows[-1].seconds:.1f} s")
        rows.append(index_scenario(ctx))
    return rows


def hostile_rows(args, tmp: Path, capture: Capture, say) -> list[Row]:
    """The hostile-content rows of issue 14, from ``benchmarks/hostile.py`` (next to this
    file; benchmarks/ is a plain directory), with their own local S3 server."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import hostile

    return hostile.run(tmp, capture, say, worker_death=not args.no_worker_death)


def gateway_scenario(ctx: Ctx, args, say) -> Row:
    import intake_helio as ih
    from intake_helio.testing.gateway_server import LocalGateway

    t0 = time.perf_counter()
    with LocalGateway(password=CANARY_PASSWORD) as gw:
        with ih.cluster(
            "gateway",
            workers=args.workers,
            worker_cores=1,
            address=gw.address,
            proxy_address=gw.proxy_address,
            auth=gw.auth,
        ) as client:
            client.wait_for_workers(args.workers, timeout=120)
            say(f"  gateway cluster up in {time.perf_counter() - t0:.1f} s")
            row = kill_scenario(
                ctx, "worker killed (gateway cluster)", client, extra_logs=gw.log_tail
            )
        row.secrets += count_secrets(gw.log_path.read_text(errors="replace"))
    return row


if __name__ == "__main__":
    sys.exit(main())
