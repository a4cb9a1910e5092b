"""Helpers shared by the unit and integration tests, each written once.

CloudCatalog trees (registry, catalog.json, yearly indexes, index rows rewritten), the
argument lists and wrapped processes of the CLI, and tiny FITS headers and files.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
from astropy.io import fits

from intake_helio import open_frames
from intake_helio.testing.aia import frame_bytes, make_aia_frame


def put(url: str, data: bytes | str, storage_options=None) -> None:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if isinstance(data, str):
        data = data.encode()
    fs.pipe_file(path, data)


def dataset_entry(id="aia_0094", index=None, root="memory://bucket/", **kw) -> dict:
    entry = {
        "id": id,
        "index": index or f"{root}registries/",
        "title": kw.pop("title", f"{id} FITS data"),
        "start": kw.pop("start", "2019-12-31T00:00:00Z"),
        "stop": kw.pop("stop", "2021-01-02T00:00:00Z"),
        "modification": "2023-05-04T00:00:00Z",
        "indextype": "csv",
        "filetype": "fits",
    }
    entry.update(kw)
    return entry


def catalog_json(root: str, entries: list[dict], **kw) -> str:
    obj = {
        "version": "1.0",
        "name": kw.pop("name", "Test bucket"),
        "endpoint": root,
        "status": kw.pop("status", {"code": 1200, "message": "OK"}),
        "catalog": entries,
    }
    obj.update(kw)
    return json.dumps(obj)


def index_csv(rows, *, header="# start, stop, datakey, filesize", quote='"', stop=True, extras=()):
    """rows: iterable of (start, stop, datakey, filesize, *extras) strings."""
    lines = [header] if header else []
    for r in rows:
        r = list(r)
        if not stop:
            del r[1]
        lines.append(",".join(f"{quote}{v}{quote}" if quote else str(v) for v in r))
    return "\n".join(lines) + "\n"


def make_rows(start: str, n: int, cadence="4min", bucket="bucket", extra=None):
    t = pd.date_range(start, periods=n, freq=cadence)
    rows = []
    for i, ti in enumerate(t):
        r = [
            ti.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            (ti + pd.Timedelta(cadence)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            f"s3://{bucket}/data/{ti:%Y%m%d}/f_{i:05d}.fits",
            str(2880 * (100 + i)),
        ]
        if extra:
            r.append(extra(i))
        rows.append(r)
    return rows


def zip_bytes(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, text)
    return buf.getvalue()


def rewrite_datakeys(fs, index_dir: str, targets: dict[int, str]) -> None:
    """Give rows of the first yearly CSV index below ``index_dir`` other datakeys.

    ``targets`` maps a row number (0 = the first row after the header) to its new datakey;
    the datakey is quoted where the index quotes it.
    """
    index = next(p for p in fs.find(index_dir) if p.endswith(".csv"))
    lines = fs.cat_file(index).decode().splitlines()
    for i, url in targets.items():
        fields = lines[1 + i].split(",")
        fields[2] = f'"{url}"' if fields[2].startswith('"') else url
        lines[1 + i] = ",".join(fields)
    fs.pipe_file(index, ("\n".join(lines) + "\n").encode())


# ----------------------------------------------------------------------------- the CLI
def range_argv(command: str, root: str, datasets: Sequence[str], start, stop) -> list[str]:
    """``COMMAND ROOT DATASET... --start START --stop STOP``."""
    return [command, root, *datasets, "--start", str(start), "--stop", str(stop)]


def s3_argv(endpoint_url: str, key: str | None = None, secret: str | None = None) -> list[str]:
    """``--endpoint-url URL``, then the key and the secret as ``--storage-option``s if given."""
    argv = ["--endpoint-url", endpoint_url]
    if key is not None:
        argv += ["--storage-option", f"key={key}"]
    if secret is not None:
        argv += ["--storage-option", f"secret={secret}"]
    return argv


def job_argv(
    command: str,
    root: str,
    datasets: Sequence[str],
    start,
    stop,
    out,
    *extra: str,
    endpoint_url: str,
    key: str | None = None,
    secret: str | None = None,
    cluster: str | None = "none",
    part_size: int | None = None,
) -> list[str]:
    """The argv of an ``irradiance`` or ``reduce`` run on a local S3 server, ``extra`` last.

    ``--cluster`` is left out with ``cluster=None``, ``--part-size`` without ``part_size``;
    progress bars are always off.
    """
    argv = [*range_argv(command, root, datasets, start, stop), "--out", str(out)]
    if cluster is not None:
        argv += ["--cluster", cluster]
    argv.append("--no-progress")
    if part_size is not None:
        argv += ["--part-size", str(part_size)]
    return [*argv, *s3_argv(endpoint_url, key, secret), *extra]


def demo_job_argv(command: str, data, out, *extra: str, **options) -> list[str]:
    """:func:`job_argv` over the whole of one demo dataset ``data`` (a ``DemoDataset``)."""
    return job_argv(
        command, data.root, [data.dataset_id], data.start, data.stop, out, *extra, **options
    )


def one_error_line(err: str) -> str:
    """The CLI's stderr as its one line ``intake-helio: error: ...``, with no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("intake-helio: error: ")
    return lines[0]


def _cli_waiting_before_each_read(wait: str) -> str:
    """A script that runs the real CLI with ``wait`` (indented code) before every frame read."""
    return f"""
import os, sys, time
import intake_helio.frames.tasks as tasks
read = tasks.MapTask.item
def waiting_one(*args, **kwargs):
{wait}
    return read(*args, **kwargs)
if __name__ == "__main__":
    tasks.MapTask.item = waiting_one
    from intake_helio.app.cli import main
    sys.exit(main(sys.argv[1:]))
"""


# the real CLI with every frame read 0.2 s slower (a slow network), so that a run can be
# stopped part-way; nothing else is changed
SLOW_CLI = _cli_waiting_before_each_read("    time.sleep(0.2)")
# the real CLI with every frame read waiting until the file $GATE exists: the run holds its
# --out (and has made its part store) for as long as the test keeps the gate shut
GATED_CLI = _cli_waiting_before_each_read(
    '    while not os.path.exists(os.environ["GATE"]):\n        time.sleep(0.02)'
)


def popen_child(args: Sequence[str], **kwargs) -> subprocess.Popen:
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


def stop_slow_run(
    directory: Path, args: Sequence[str], sig: int, ready: Callable[[], bool], seconds: float = 90
) -> tuple[int, str, str]:
    """Run the CLI with ``args`` slowly (:data:`SLOW_CLI`), send ``sig`` once ``ready()``.

    The wrapper script is written to ``directory``; the run must still be going when
    ``ready()`` first holds, within ``seconds``. A run left over is killed. Returns the
    return code, stdout and stderr.
    """
    wrapper = Path(directory) / "slow_cli.py"
    wrapper.write_text(SLOW_CLI)
    proc = popen_child(
        [sys.executable, str(wrapper), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + seconds
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"no part saved within {seconds} s"
            time.sleep(0.02)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


def loopback_cluster(workers: int = 2):
    """A ``distributed.LocalCluster`` of ``workers`` one-thread processes on 127.0.0.1."""
    import distributed

    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )


# ----------------------------------------------------------------------------- FITS
SECRET = "root:x:0:0:root:/root:/bin/bash"  # text a hostile file holds: never to be quoted


def quiet_bytes(hdul: fits.HDUList) -> bytes:
    """:func:`~intake_helio.testing.aia.frame_bytes`, astropy's warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return frame_bytes(hdul)


def good_frame(i: int, size: int = 32) -> bytes:
    """A synthetic AIA frame (seed ``i``), ``i`` minutes after 2020-01-01, as file bytes."""
    t = pd.Timestamp("2020-01-01") + pd.Timedelta(minutes=i)
    return frame_bytes(make_aia_frame(t, size=size, seed=i))


def astropy_mean(raw: bytes) -> float:
    """astropy's mean of extension 1 of a FITS file, NaN (BLANK) pixels left out."""
    with fits.open(io.BytesIO(raw)) as hdul:
        return float(np.nanmean(hdul[1].data, dtype=np.float64))


def aia_wcs_header(
    *,
    crpix=(48.3, 47.9),
    crota: float = 0.0,
    cdelt=(24.0, 24.0),
    crval=(3.0, -2.0),
    exptime: float | None = None,
    **cards,
) -> fits.Header:
    """The solar geometry cards of a small AIA 171 frame (``EXPTIME`` only if given).

    ``cards`` are set last: they replace defaults in place, or follow them.
    """
    defaults = {
        "TELESCOP": "SDO/AIA",
        "INSTRUME": "AIA_3",
        "DETECTOR": "AIA",
        "WAVELNTH": 171,
        "WAVEUNIT": "angstrom",
        "DATE-OBS": "2021-03-04T05:06:07.340",
        "EXPTIME": exptime,
        "CTYPE1": "HPLN-TAN",
        "CTYPE2": "HPLT-TAN",
        "CUNIT1": "arcsec",
        "CUNIT2": "arcsec",
        "CRPIX1": crpix[0],
        "CRPIX2": crpix[1],
        "CRVAL1": crval[0],
        "CRVAL2": crval[1],
        "CDELT1": cdelt[0],
        "CDELT2": cdelt[1],
        "CROTA2": crota,
        "DSUN_OBS": 1.49e11,
        "HGLN_OBS": 0.0,
        "HGLT_OBS": 1.2,
        "RSUN_REF": 696000000.0,
        "RSUN_OBS": 960.0,
    }
    h = fits.Header()
    for k, v in defaults.items():
        if v is not None:
            h[k] = v
    for k, v in cards.items():
        h[k] = v
    return h


class CountingFS:
    """Wraps a real fsspec filesystem and records the byte ranges actually read."""

    def __init__(self, fs):
        self.fs = fs
        self.reads: list[tuple[int | None, int | None, int]] = []  # (start, end, nbytes)

    def cat_file(self, path, start=None, end=None, **kw):
        data = self.fs.cat_file(path, start=start, end=end, **kw)
        self.reads.append((start, end, len(data)))
        return data

    def cat_ranges(self, paths, starts, ends, **kw):
        out = self.fs.cat_ranges(paths, starts, ends, **kw)
        for s, e, d in zip(starts, ends, out, strict=True):
            self.reads.append((s, e, len(d) if isinstance(d, bytes | bytearray) else 0))
        return out

    def unstrip_protocol(self, path):
        return self.fs.unstrip_protocol(path)

    @property
    def nbytes(self) -> int:
        return sum(n for _, _, n in self.reads)


# hostile files, built byte by byte (astropy refuses to write them)
# ----------------------------------------------------------------------------- solar files
SOLAR_N = 4  # compressed int16 frames, then one float primary-HDU frame
SOLAR_SIZE = 64


def solar_header(i: int, t: pd.Timestamp) -> fits.Header:
    """Frame ``i``'s AIA 171 header, starting at ``t``: its pointing drifts frame by frame."""
    cards = {
        "DATE-OBS": f"{t:%Y-%m-%dT%H:%M:%S}.340",
        "T_OBS": f"{t + pd.Timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}.340Z",
        "DSUN_OBS": 1.5e11 + 1e6 * i,
        "HGLN_OBS": 0.001 * i,
        "HGLT_OBS": 1.5 + 0.01 * i,
        "RSUN_OBS": 957.0,
        "QUALITY": 0,
    }
    return aia_wcs_header(
        crpix=(32.5 + 0.7 * i, 31.5 - 0.4 * i),
        crota=0.02 * i,
        cdelt=(38.4, 38.4),
        crval=(0.0, 0.0),
        exptime=2.0,
        **cards,
    )


def write_solar_files(fs) -> tuple[list[str], list[bytes], list[pd.Timestamp]]:
    """Write :data:`SOLAR_N` RICE_1 int16 frames and one float primary-HDU frame to
    ``s3://solar/`` of the s3fs filesystem ``fs`` -> (datakeys, raw bytes, start times)."""
    fs.mkdir("solar")
    rng = np.random.default_rng(1)
    keys, raws = [], []
    t0 = pd.Timestamp("2021-03-04T05:06:00")
    size = SOLAR_SIZE
    for i in range(SOLAR_N):
        t = t0 + pd.Timedelta(seconds=12 * i)
        data = rng.integers(0, 3000, (size, size)).astype(np.int16)
        data[0, :3] = -32768
        h = solar_header(i, t)
        h["BLANK"] = -32768
        comp = fits.CompImageHDU(
            data=data, header=h, compression_type="RICE_1", tile_shape=(1, size)
        )
        keys.append(f"s3://solar/aia171_{i}.fits")
        raws.append(frame_bytes(fits.HDUList([fits.PrimaryHDU(), comp])))
    t = t0 + pd.Timedelta(seconds=12 * SOLAR_N)
    h = solar_header(SOLAR_N, t)
    float_image = rng.normal(100, 10, (size, size)).astype(np.float64)
    keys.append("s3://solar/aia171_float.fits")
    raws.append(frame_bytes(fits.HDUList([fits.PrimaryHDU(float_image, header=h)])))
    for key, raw in zip(keys, raws, strict=True):
        fs.pipe_file(key, raw)
    times = [t0 + pd.Timedelta(seconds=12 * i) for i in range(SOLAR_N + 1)]
    return keys, raws, times


def solar_frames(s3, solar_files, n: int = SOLAR_N, **kwargs):
    """``ih.open_frames`` of the first ``n`` solar files on the local S3 server ``s3``."""
    keys, _, times = solar_files
    df = pd.DataFrame({"start": times[:n], "datakey": keys[:n]})
    return open_frames(df, storage_options=s3.storage_options, **kwargs)


def sunpy_map_of(raw: bytes):
    """sunpy's own Map of a FITS file's image (extension 1, else the primary HDU)."""
    import sunpy.map

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw)) as hdul:
            hdu = hdul[1] if len(hdul) > 1 else hdul[0]
            return sunpy.map.Map(np.asarray(hdu.data, dtype=np.float32), hdu.header.copy())


def assert_same_map(got, want) -> None:
    """Two sunpy Maps agree: type, date, wavelength, observer, reference pixel and
    coordinate, rotation and data."""
    assert type(got) is type(want)
    assert got.date == want.date
    assert got.wavelength == want.wavelength
    assert got.observer_coordinate.separation_3d(want.observer_coordinate).to_value("m") < 1
    assert got.reference_pixel == want.reference_pixel
    assert got.reference_coordinate.separation(want.reference_coordinate).to_value("arcsec") < 1e-6
    np.testing.assert_allclose(got.rotation_matrix, want.rotation_matrix)
    np.testing.assert_array_equal(got.data, want.data)
