"""The irradiance of demo frames in the real local S3 server: library call and in-process job.

Every value is checked against astropy reading the same bytes from S3, against the generic
``frames.mean(("y", "x"))`` of the same lazy frames, and against the generator's truth.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from astropy.io import fits

import intake_helio as ih
import intake_helio.compute.progress as progress_mod
from intake_helio.app.job import run_irradiance_job
from intake_helio.compute.reduction import irradiance
from intake_helio.testing.demo_data import write_demo_dataset
from tests.partstore import saved_parts

# the module (``intake_helio.compute.reduction`` is the function, exported by the package)
FRAMES = 12
SIZE = 64


@pytest.fixture
def demo(s3):
    return write_demo_dataset("s3://helio-demo/", s3.storage_options, frames=FRAMES, size=SIZE)


def _frames(s3, demo, **kwargs) -> xr.DataArray:
    bucket = ih.open_bucket(demo.root, storage_options=s3.storage_options)
    kwargs.setdefault("on_error", "nan")
    return bucket[demo.dataset_id].to_dataarray(demo.start, demo.stop, **kwargs)


def _astropy(fs, key: str):
    """(float64 image, header) as astropy reads the object from S3, or None if unreadable."""
    raw = fs.cat_file(key)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(raw)) as hdul:
                return np.array(hdul[1].data, dtype=np.float64), hdul[1].header.copy()
    except (OSError, ValueError, TypeError, IndexError):  # the truncated frame
        return None


def _set_exptime(fs, key: str, value: float) -> None:
    """Rewrite the EXPTIME card of a stored frame in place (same size, same pixels)."""
    raw = bytearray(fs.cat_file(key))
    card = fits.Card("EXPTIME", value, "[s] exposure time").image.encode("ascii")
    starts = [m.start() for m in re.finditer(rb"EXPTIME =", bytes(raw)) if m.start() % 80 == 0]
    assert starts, "no EXPTIME card found"
    for s in starts:
        raw[s : s + 80] = card
    fs.pipe_file(key, bytes(raw))


# ----------------------------------------------------------------------------- library
def test_irradiance_equals_astropy_generic_mean_and_truth(s3, s3fs_client, demo):
    frames = _frames(s3, demo)
    result = irradiance(frames, progress=False, part_size=5)

    assert isinstance(result, xr.Dataset)
    assert set(result.data_vars) >= {"irradiance", "datakey", "status", "n_valid"}
    assert result.sizes == {"time": FRAMES}
    np.testing.assert_array_equal(result["time"], frames["time"])
    np.testing.assert_array_equal(result["time"], demo.times.to_numpy())
    assert result["datakey"].to_numpy().tolist() == list(demo.datakeys)
    assert result["irradiance"].dtype == np.float64
    assert result["irradiance"].attrs["units"] == "DN"

    values = result["irradiance"].to_numpy()
    generic = frames.mean(("y", "x")).compute(scheduler="threads").to_numpy()
    truth = np.asarray(demo.expected_mean)
    bad = np.array([k in demo.corrupt for k in demo.datakeys])
    assert bad.sum() == 1
    np.testing.assert_allclose(values[~bad], generic[~bad], rtol=1e-6)
    np.testing.assert_allclose(values[~bad], truth[~bad], rtol=1e-6)
    assert np.isnan(values[bad]).all() and np.isnan(generic[bad]).all()

    status = result["status"].to_numpy()
    assert status[bad].tolist() == ["truncated"]
    assert (status[~bad] == "ok").all()

    # every good frame against astropy's own reading of the object
    n_valid = result["n_valid"].to_numpy()
    for i, key in enumerate(demo.datakeys):
        read = _astropy(s3fs_client, key)
        if bad[i]:
            assert read is None and n_valid[i] == 0
            continue
        image, _ = read
        assert n_valid[i] == np.isfinite(image).sum() < SIZE * SIZE  # BLANK pixels left out
        assert values[i] == pytest.approx(np.nanmean(image), rel=1e-6)


def test_normalize_divides_each_frame_by_its_own_exptime(s3, s3fs_client, demo):
    changed = {demo.datakeys[2]: 1.45, demo.datakeys[9]: 0.725}
    for key, exptime in changed.items():
        _set_exptime(s3fs_client, key, exptime)
    s3fs_client.invalidate_cache()

    frames = _frames(s3, demo)
    dn = irradiance(frames, progress=False)
    dns = irradiance(frames, normalize=True, progress=False)
    assert dns["irradiance"].attrs["units"] == "DN/s"
    assert dns["status"].to_numpy().tolist() == dn["status"].to_numpy().tolist()

    exptimes = []
    for key in demo.datakeys:
        read = _astropy(s3fs_client, key)
        exptimes.append(np.nan if read is None else read[1]["EXPTIME"])
    exptimes = np.array(exptimes)
    assert exptimes[2] == 1.45 and exptimes[9] == 0.725 and exptimes[0] == demo.exptime[0]
    np.testing.assert_allclose(dns["irradiance"], dn["irradiance"] / exptimes, rtol=1e-6)
    # the pixels are unchanged: DN is still the generator's truth
    good = ~np.isnan(np.asarray(demo.expected_mean))
    np.testing.assert_allclose(dn["irradiance"][good], np.asarray(demo.expected_mean)[good], 1e-6)

    # the generic path (frames with an EXPTIME coordinate, modified) agrees
    with_exptime = _frames(s3, demo, header_keys=["EXPTIME"])
    np.testing.assert_array_equal(with_exptime["EXPTIME"].to_numpy(), exptimes)
    generic = irradiance(with_exptime * 1.0, normalize=True, progress=False)
    np.testing.assert_allclose(generic["irradiance"], dns["irradiance"], rtol=1e-6)


def test_exptime_varying_frame_to_frame_gives_dn_per_second_everywhere(
    s3, s3fs_client, demo, tmp_path
):
    """AEC-like exposures (every frame its own EXPTIME): the job's default DN/s is each
    astropy mean / EXPTIME, and every result says DN/s (CSV, netCDF, PNG axis, the frames,
    ``ih.irradiance`` of frames in DN/s without dividing twice, ``to_map``'s exposure)."""
    sunpy_map = pytest.importorskip("sunpy.map")
    from intake_helio.app.plots import irradiance_figure

    exptimes = np.round(np.linspace(2.9, 0.4, FRAMES), 3)  # shortening as in a flare
    for key, value in zip(demo.datakeys, exptimes, strict=True):
        if key not in demo.corrupt:
            _set_exptime(s3fs_client, key, float(value))
    s3fs_client.invalidate_cache()
    reads = [_astropy(s3fs_client, k) for k in demo.datakeys]
    truth = np.array([np.nan if r is None else np.nanmean(r[0]) / r[1]["EXPTIME"] for r in reads])
    assert exptimes.max() / exptimes.min() > 5  # exposures really differ
    assert len({r[1]["EXPTIME"] for r in reads if r is not None}) == FRAMES - 1

    result, _ = _job(s3, demo, tmp_path)  # the default units
    np.testing.assert_allclose(result["irradiance"], truth, rtol=1e-6)
    table = pd.read_csv(tmp_path / "irradiance.csv", keep_default_na=False, na_values=["NaN"])
    np.testing.assert_allclose(table["irradiance"], truth, rtol=1e-6)
    assert set(table["units"]) == {"DN/s"}
    with xr.open_dataset(tmp_path / "irradiance.nc") as nc:
        assert nc["irradiance"].attrs["units"] == "DN/s"
    fig = irradiance_figure(result)
    try:
        assert fig.axes[0].get_ylabel().endswith("[DN/s]")
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    dn, _ = _job(s3, demo, tmp_path / "dn", units="DN")
    np.testing.assert_allclose(dn["irradiance"], truth * exptimes, rtol=1e-6)
    assert dn["irradiance"].attrs["units"] == "DN"

    # frames read in DN/s: ih.irradiance follows their units and never divides twice
    rated = _frames(s3, demo, units="DN/s")
    for normalize in (False, True):
        got = irradiance(rated, normalize=normalize, progress=False)
        assert got["irradiance"].attrs["units"] == "DN/s"
        np.testing.assert_allclose(got["irradiance"], truth, rtol=1e-6)
    stats = ih.map_frames(rated, ["mean", "median", "p99", "count"], progress=False)
    assert stats["mean"].attrs["units"] == stats["median"].attrs["units"] == "DN/s"
    for name, of in (("median", np.nanmedian), ("p99", lambda a: np.nanpercentile(a, 99))):
        want = [np.nan if r is None else of(r[0] / r[1]["EXPTIME"]) for r in reads]
        np.testing.assert_allclose(stats[name], want, rtol=1e-5)
    assert stats["p99"].attrs["long_name"] == "99th percentile of the frame's valid pixels"
    assert "units" not in stats["count"].attrs
    # a map of a frame in DN/s has an exposure of 1 s (as aiapy's normalize_exposure)
    i = next(i for i, k in enumerate(demo.datakeys) if i > 0 and k not in demo.corrupt)
    m = ih.to_map(rated, i)
    assert isinstance(m, sunpy_map.GenericMap)
    assert m.exposure_time.to_value("s") == 1.0 and m.unit.to_string() == "DN / s"
    np.testing.assert_allclose(m.data, reads[i][0] / exptimes[i], rtol=1e-6, equal_nan=True)


def test_irradiance_on_a_local_process_cluster(s3, demo):
    distributed = pytest.importorskip("distributed")
    frames = _frames(s3, demo)
    local = irradiance(frames, progress=False, part_size=4)

    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
        distributed.get_task_stream(client) as stream,
    ):
        workers = set(client.nthreads())
        seen: list[int] = []
        result = irradiance(
            frames, progress=False, part_size=4, on_part=lambda p, df: seen.append(p)
        )
    xr.testing.assert_identical(result.drop_attrs(), local.drop_attrs())
    assert sorted(seen) == [0, 1, 2]
    # the frames were read on the worker processes
    ran_on = {t["worker"] for t in stream.data if "helio" in str(t.get("key", ""))}
    assert ran_on and ran_on <= workers


# ----------------------------------------------------------------------------- progress bar
BAR_DONE = re.compile(
    rf"irradiance: 100%\|.*\| {FRAMES}/{FRAMES} \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(frame/s|s/frame)\]"
)


def test_progress_bar_in_a_terminal(s3, demo, capsys, monkeypatch):
    frames = _frames(s3, demo)
    monkeypatch.setattr(progress_mod, "interactive", lambda: True)
    irradiance(frames, part_size=4)
    err = capsys.readouterr().err
    assert f"0/{FRAMES} [00:00<?, ?frame/s]" in err  # total known from the start
    assert BAR_DONE.search(err), err


def test_no_progress_bar_when_asked_or_not_a_terminal(s3, demo, capsys, monkeypatch):
    frames = _frames(s3, demo)
    irradiance(frames, part_size=4)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress_mod, "interactive", lambda: True)
    irradiance(frames, part_size=4, progress=False)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- job
def _job(s3, demo, out, **kwargs):
    kwargs.setdefault("cluster_kind", None)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("part_size", 5)
    return run_irradiance_job(
        demo.root,
        demo.dataset_id,
        demo.start,
        demo.stop,
        str(out),
        storage_options=s3.storage_options,
        **kwargs,
    )


def test_job_saves_files_and_resumes_with_nothing_left(s3, s3fs_client, demo, tmp_path):
    result, summary = _job(s3, demo, tmp_path)
    assert result["irradiance"].attrs["units"] == "DN/s"  # the job's default
    assert (summary.frames, summary.ok, summary.failed) == (FRAMES, FRAMES - 1, {"truncated": 1})
    assert summary.computed == FRAMES and summary.elapsed > 0
    assert summary.files_per_second == pytest.approx(FRAMES / summary.elapsed)
    text = summary.text()
    assert f"frames: {FRAMES}  ok: {FRAMES - 1}  failed: 1" in text
    assert "failed (truncated): 1" in text and "files/s" in text
    assert sorted(summary.paths) == ["csv", "nc", "png"]

    table = pd.read_csv(
        summary.paths["csv"], keep_default_na=False, na_values={"irradiance": ["NaN"]}
    )
    assert table["datakey"].tolist() == list(demo.datakeys)
    assert table.loc[table["status"] != "ok", "datakey"].tolist() == list(demo.corrupt)
    assert set(table["units"]) == {"DN/s"}
    exptime = [
        np.nan if r is None else r[1]["EXPTIME"]
        for r in (_astropy(s3fs_client, k) for k in demo.datakeys)
    ]
    truth = np.asarray(demo.expected_mean) / np.asarray(exptime)
    got = table["irradiance"].to_numpy()
    np.testing.assert_allclose(got, truth, rtol=1e-6)  # NaN where the truth is NaN
    np.testing.assert_array_equal(got, result["irradiance"].to_numpy())
    store = tmp_path / "parts.zarr"
    assert saved_parts(store) == [0, 1, 2]
    assert not (tmp_path / "parts").exists()  # the one part store: Zarr

    csv_bytes = (tmp_path / "irradiance.csv").read_bytes()
    chunks = [p for p in store.rglob("*") if p.is_file() and p.parent.name != "_resume"]
    mtimes = {p: p.stat().st_mtime_ns for p in chunks if p.name[0].isdigit()}
    assert mtimes  # the parts' data chunks
    again, summary2 = _job(s3, demo, tmp_path, resume=True)
    assert summary2.computed == 0 and summary2.frames == FRAMES
    assert (tmp_path / "irradiance.csv").read_bytes() == csv_bytes
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # no part written again
    xr.testing.assert_identical(again.drop_attrs(), result.drop_attrs())


def test_job_resume_with_other_arguments_is_refused(s3, demo, tmp_path):
    _job(s3, demo, tmp_path)
    with pytest.raises(ValueError, match=r"different run \(differs in normalize\)"):
        _job(s3, demo, tmp_path, resume=True, units="DN")
    with pytest.raises(ValueError, match=r"differs in .*part_size"):
        _job(s3, demo, tmp_path, resume=True, part_size=4)
    assert saved_parts(tmp_path / "parts.zarr") == [0, 1, 2]  # kept for a real resume
    with pytest.raises(ValueError, match="part_size=0; expected a positive number"):
        _job(s3, demo, tmp_path, part_size=0)  # refused before the saved parts are touched
    assert saved_parts(tmp_path / "parts.zarr") == [0, 1, 2]


def test_job_with_cutout_equals_astropy_cutout_means(s3, s3fs_client, demo, tmp_path):
    cutout = {"y": slice(8, 40), "x": slice(4, 60)}
    result, summary = _job(s3, demo, tmp_path, cutout=cutout)
    assert summary.failed == {"truncated": 1}
    for i, key in enumerate(demo.datakeys):
        read = _astropy(s3fs_client, key)
        if read is None:
            assert result["status"].values[i] == "truncated"
            continue
        box = read[0][8:40, 4:60]
        assert result["n_valid"].values[i] == np.isfinite(box).sum()
        rate = np.nanmean(box) / read[1]["EXPTIME"]  # the job's default: DN/s
        assert result["irradiance"].values[i] == pytest.approx(rate, rel=1e-6)
