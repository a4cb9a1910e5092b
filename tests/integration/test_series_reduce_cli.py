"""``intake-helio reduce`` on a time-series dataset (CDF on the local S3 server): a function of
each file saved part by part; ``--resume`` computes only the missing parts and refuses another
run's; statistics meant for frames are refused in one line."""

from __future__ import annotations

import json
import tempfile
import uuid

import cdflib.xarray
import pandas as pd
import pytest

from intake_helio.app.cli import EXIT_FAILED_FRAMES
from intake_helio.testing.cdf_files import magnetometer_cdf, truncated
from intake_helio.testing.series_data import SeriesFile, publish_series
from tests.builders import one_error_line, s3_argv

ROOT = "s3://helio-series-cli/"
T0 = pd.Timestamp("2020-06-01")
HOUR = pd.Timedelta("1h")
SCIENCE = '''
def bmax(ds):
    """The file's largest |B|."""
    return float(ds.B_mag.max())


def stats(ds):
    return {"bx_mean": float(ds.B_GSE[:, 0].mean()), "n": ds.sizes["time"]}
'''


@pytest.fixture
def served(s3, tmp_path, monkeypatch):
    files = []
    for h in range(5):
        t = T0 + h * HOUR
        data = magnetometer_cdf(t, t + HOUR, "20s")
        files.append(SeriesFile(f"mag/{h}.cdf", t, t + HOUR, truncated(data) if h == 3 else data))
    publish_series(ROOT, s3.storage_options, "mag", files, filetype="cdf")
    name = f"helio_series_science_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SCIENCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return s3, files, name


def _argv(s3, out, name, *extra):
    return [
        "reduce", ROOT, "--dataset", "mag", "--start", T0.isoformat(),
        "--stop", (T0 + 5 * HOUR).isoformat(), "--out", str(out), "--cluster", "none",
        "--part-size", "2", "--no-progress", "--science", f"{name}:bmax",
        *s3_argv(s3.endpoint_url, s3.key, s3.secret), *extra,
    ]  # fmt: skip


def _bmax(data: bytes) -> float:
    with tempfile.NamedTemporaryFile(suffix=".cdf") as f:
        f.write(data)
        f.flush()
        return float(cdflib.xarray.cdf_to_xarray(f.name, fillval_to_nan=True).B_mag.max())


def test_reduce_saves_a_value_or_reason_per_file_and_resumes_only_what_is_missing(
    served, tmp_path, cli
):
    s3, files, name = served
    out = tmp_path / "out"
    code, stdout, err = cli(_argv(s3, out, name, "--format", "csv,nc"))
    assert code == EXIT_FAILED_FRAMES, (stdout, err)  # one file is truncated: its reason saved
    assert "files: 5  ok: 4  failed: 1" in stdout and "failed (truncated): 1" in stdout
    table = pd.read_csv(out / "reduce.csv")
    assert list(table["status"] == "ok") == [True, True, True, False, True]
    for h in (0, 1, 2, 4):
        assert table["bmax"][h] == pytest.approx(_bmax(files[h].data), rel=1e-6)
    assert pd.to_datetime(table["time"]).tolist() == [T0 + h * HOUR for h in range(5)]

    parts = sorted((out / "series_parts").glob("part_*.json"))
    assert len(parts) == 2  # files 0-1 and 2, 4 (file 3 failed when opening: not read)
    parts[1].unlink()
    code, stdout, _ = cli(_argv(s3, out, name, "--resume"))
    assert code == EXIT_FAILED_FRAMES and "computed: 2 files" in stdout
    assert pd.read_csv(out / "reduce.csv").equals(table)

    code, _, err = cli(_argv(s3, out, name, "--resume", "--part-size", "3"))
    assert code == 2 and "holds parts of a different run (differs in part_size)" in err
    assert json.loads((out / "series_parts" / "run.json").read_text())["part_size"] == 2


def test_frame_statistics_on_a_time_series_are_refused_in_one_line(served, tmp_path, cli):
    s3, _, name = served
    argv = [a for a in _argv(s3, tmp_path / "o", name) if a not in ("--science", f"{name}:bmax")]
    code, _, err = cli([*argv, "--stat", "max"])
    assert code == 2
    assert "apply to frames; a time-series dataset takes functions" in one_error_line(err)
