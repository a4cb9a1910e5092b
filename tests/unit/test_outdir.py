"""The output directory guard, on real local files only (no sockets).

Each hostile case measured on the old code is set up on disk and checked: in the
``parts/`` of a run interrupted by an older version (imported into the Zarr store on
resume) a part planted from another dataset, an oversized part, someone else's ``parts/``,
a symlinked ``parts/``, a symbolic link planted at a temporary name; symlinked output
files; and the same guards for the jobs' Zarr store. Every part that is used is compared
with what the frames give when computed afresh.
"""

from __future__ import annotations

import json
import os
import stat

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from intake_helio.app.job import _irradiance_store
from intake_helio.app.outdir import OutputDirError, atomic_write
from intake_helio.app.results import save_results, write_netcdf
from intake_helio.app.runs import PartRun
from intake_helio.app.stores import ZarrStore
from intake_helio.app.tables import write_csv
from intake_helio.base.errors import HelioError
from intake_helio.compute.reduction import STATS, as_irradiance, irradiance, iter_parts
from tests.partstore import write_legacy_parts

RNG = np.random.default_rng(14)
IDENTITY = {"dataset": "unit_test", "frames": 6, "part_size": 3}


# ----------------------------------------------------------------------------- helpers
def _frames(n: int = 6, dataset: str = "unit_test", start="2021-03-01") -> xr.DataArray:
    """In-memory lazy (time, y, x) frames of ``dataset``."""
    data = RNG.normal(300, 40, (n, 4, 5)).astype(np.float32)
    times = pd.date_range(start, periods=n, freq="4min") + pd.to_timedelta(
        RNG.integers(0, 10**6, n), unit="us"
    )
    coords = {
        "time": times,
        "datakey": ("time", [f"memory://{dataset}/f{i}.fits" for i in range(n)]),
        "y": np.arange(4),
        "x": np.arange(5),
    }
    return xr.DataArray(
        da.from_array(data, chunks=(1, 4, 5)),
        dims=("time", "y", "x"),
        coords=coords,
        attrs={"units": "DN", "dataset": dataset},
    )


def _job(frames, part_size=3, identity=IDENTITY) -> PartRun:
    times = frames["time"].to_numpy()
    identity = {**identity, "job": "irradiance"}
    return PartRun({"unit_test": frames}, identity, times, part_size, False, "irradiance")


def _store(out, frames, resume, part_size=3, identity=IDENTITY):
    """The irradiance job's store of ``out`` (old parts imported on resume): (store, notes)."""
    job = _job(frames, part_size, identity)
    return _irradiance_store(job, out, resume, identity, {"dataset": "unit_test"}, "DN")


def _run(out, frames, resume, part_size=3, identity=IDENTITY):
    """The irradiance job's steps on ``frames``: -> (result, parts computed, notes)."""
    store, notes = _store(out, frames, resume, part_size, identity)
    saved = store.done()
    result, _ = _job(frames, part_size, identity).fill(
        store, list(STATS), None, None, False, lambda s: as_irradiance(s, "DN", {})
    )
    return result, sorted(set(range(store.parts)) - saved), notes


def _legacy(out, frames, part_size=3, identity=IDENTITY):
    """``out/parts/`` as an older version left it after saving every part of ``frames``."""
    return write_legacy_parts(out, identity, dict(iter_parts(frames, part_size=part_size)))


def _snapshot(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ----------------------------------------------------------------------------- old parts checked
def test_the_parts_of_an_older_version_are_imported_on_resume(tmp_path):
    frames = _frames()
    full, computed, _ = _run(tmp_path / "fresh", frames, resume=False)
    assert computed == [0, 1] and full.sizes["time"] == 6
    _legacy(tmp_path, frames)
    result, computed, notes = _run(tmp_path, frames, resume=True)
    assert computed == [] and notes == []  # every part imported, none computed
    xr.testing.assert_identical(result, full)
    assert not (tmp_path / "parts").exists()  # imported, then deleted (all of it ours)
    again, computed, _ = _run(tmp_path, frames, resume=True)  # now the store's own record
    assert computed == []
    xr.testing.assert_identical(again, full)


def test_planted_parts_from_another_dataset_are_never_merged(tmp_path):
    frames = _frames()
    full, _, _ = _run(tmp_path / "fresh", frames, resume=False)
    parts = _legacy(tmp_path, frames)
    # the same manifest, plus parts of another dataset: one beyond the run, one in its place
    other = dict(iter_parts(_frames(dataset="aia_0171", start="2022-01-01"), part_size=3))
    write_csv(other[0], parts / "part-000099.csv")
    write_csv(other[1], parts / "part-000001.csv")

    result, computed, notes = _run(tmp_path, frames, resume=True)
    assert computed == [1]  # the planted part 1 is computed again, part 0 kept
    xr.testing.assert_identical(result, full)
    assert result["datakey"].to_numpy().tolist() == frames["datakey"].to_numpy().tolist()
    assert not parts.exists()
    assert len(notes) == 2
    assert all("\n" not in note for note in notes)
    note99 = next(n for n in notes if "part-000099.csv" in n)
    assert str(parts / "part-000099.csv") in note99
    assert "part number 99 is outside this run's parts (0..1)" in note99
    note1 = next(n for n in notes if "part-000001.csv" in n)
    assert "datakeys are not those of part 1's frames (first at row 0)" in note1
    assert "computed again" in note1


def test_an_oversized_part_is_recomputed_not_merged(tmp_path):
    frames = _frames(6)
    identity = {**IDENTITY, "part_size": 6}
    full, _, _ = _run(tmp_path / "fresh", frames, False, part_size=6, identity=identity)
    part = _legacy(tmp_path, frames, part_size=6, identity=identity) / "part-000000.csv"
    # 12 rows for a part of 6 frames: its own 6 rows, then 6 of another dataset
    good = dict(iter_parts(frames, part_size=6))[0]
    extra = dict(iter_parts(_frames(6, dataset="x", start="2021-03-02"), part_size=6))[0]
    write_csv(pd.concat([good, extra], ignore_index=True), part)

    result, computed, notes = _run(tmp_path, frames, resume=True, part_size=6, identity=identity)
    assert computed == [0]
    assert result.sizes["time"] == 6
    xr.testing.assert_identical(result, full)
    assert notes == [
        f"{part} not used: it has 12 rows; part 0 holds 6 frames; removed, so part 0 is "
        "computed again"
    ]


def test_a_part_with_other_times_or_garbage_is_recomputed(tmp_path):
    frames = _frames()
    full, _, _ = _run(tmp_path / "fresh", frames, resume=False)
    parts = _legacy(tmp_path, frames)
    shifted = dict(iter_parts(frames, part_size=3))[1]
    shifted["time"] = shifted["time"] + pd.Timedelta("1s")
    write_csv(shifted, parts / "part-000001.csv")
    (parts / "part-000000.csv").write_bytes(b"\x00\xffnot a table")

    result, computed, notes = _run(tmp_path, frames, resume=True)
    assert computed == [0, 1]
    xr.testing.assert_identical(result, full)
    assert any("times are not those of part 1's frames (first at row 0)" in n for n in notes)
    assert any("part-000000.csv not used: it is not a part table" in n for n in notes)


def test_old_parts_are_read_once_then_the_store_is_the_record(tmp_path):
    # (the old CSV store checked each part again when loading it; an imported part is
    # copied into the Zarr store once, checked as it is read, and the directory deleted)
    frames = _frames()
    full, _, _ = _run(tmp_path / "fresh", frames, resume=False)
    parts = _legacy(tmp_path, frames)
    store, notes = _store(tmp_path, frames, resume=True)
    assert store.done() == {0, 1} and notes == [] and not parts.exists()
    # a parts/ written again afterwards is never read: the store has the run's record
    good = dict(iter_parts(frames, part_size=3))[0]
    write_legacy_parts(tmp_path, IDENTITY, {0: pd.concat([good, good], ignore_index=True)})
    result, computed, notes = _run(tmp_path, frames, resume=True)
    assert computed == [] and notes == []
    xr.testing.assert_identical(result, full)


# ----------------------------------------------------------------------------- whose files
@pytest.mark.parametrize(
    "manifest",
    [None, json.dumps({"tool": "other"}, indent=2).encode(), b"\x89 not json"],
    ids=["no-manifest", "foreign-manifest", "unparsable-manifest"],
)
def test_someone_elses_parts_dir_is_refused_and_left_alone(tmp_path, manifest):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-000000.csv").write_text("their,own\n1,2\n")
    (parts / "notes.txt").write_text("keep me")
    if manifest is not None:
        (parts / "manifest.json").write_bytes(manifest)
    before = _snapshot(parts)

    with pytest.raises(OutputDirError) as err:
        _store(tmp_path, _frames(), resume=True)
    assert isinstance(err.value, HelioError) and isinstance(err.value, ValueError)
    message = str(err.value)
    assert str(parts) in message and "choose another --out" in message
    assert "not a parts directory of intake-helio" in message
    assert _snapshot(parts) == before
    assert not (tmp_path / "parts.zarr").exists()  # refused before anything was written
    # without --resume the directory is not the job's (it saves in parts.zarr): left alone
    _, computed, _ = _run(tmp_path, _frames(), resume=False)
    assert computed == [0, 1] and _snapshot(parts) == before


def test_old_parts_of_a_different_run_are_refused_and_kept(tmp_path):
    frames = _frames()
    parts = _legacy(tmp_path, frames, identity={**IDENTITY, "normalize": True})
    before = _snapshot(parts)
    with pytest.raises(ValueError, match=r"parts of a different run \(differs in normalize\)"):
        _store(tmp_path, frames, resume=True)
    assert _snapshot(parts) == before and not (tmp_path / "parts.zarr").exists()


def test_only_our_own_files_are_deleted_from_our_parts_dir(tmp_path):
    frames = _frames()
    parts = _legacy(tmp_path, frames)
    (parts / "notes.txt").write_text("mine, not the tool's")
    (parts / "part-1.csv").write_text("not named like a part")
    (parts / ".part-000001.csv.tmp-123").write_text("left by a killed run")
    (parts / "part-000002.csv").mkdir()  # a directory is never deleted

    store, notes = _store(tmp_path, frames, resume=True)
    assert store.done() == {0, 1} and notes == []
    assert sorted(p.name for p in parts.iterdir()) == [
        "notes.txt",
        "part-000002.csv",
        "part-1.csv",
    ]


def test_an_empty_parts_dir_without_manifest_is_used(tmp_path):
    (tmp_path / "parts").mkdir()
    result, computed, _ = _run(tmp_path, _frames(), resume=True)
    assert computed == [0, 1] and result.sizes["time"] == 6


# ----------------------------------------------------------------------------- symbolic links
def test_a_symlinked_parts_dir_is_refused_and_its_target_untouched(tmp_path):
    frames = _frames()
    elsewhere = tmp_path / "elsewhere"
    _legacy(elsewhere, frames)  # even a parts dir of this very run
    (elsewhere / "parts" / "theirs.txt").write_text("keep")
    before = _snapshot(elsewhere)
    out = tmp_path / "out"
    out.mkdir()
    (out / "parts").symlink_to(elsewhere / "parts", target_is_directory=True)

    with pytest.raises(OutputDirError, match="is a symbolic link") as err:
        _store(out, frames, resume=True)
    assert str(out / "parts") in str(err.value) and "choose another --out" in str(err.value)
    assert _snapshot(elsewhere) == before
    _run(out, frames, resume=False)  # without --resume it is not read: never followed
    assert _snapshot(elsewhere) == before
    (out / "parts").unlink()
    (out / "parts.zarr").rename(tmp_path / "unused.zarr")
    (out / "parts").symlink_to(tmp_path / "missing")  # a dangling link: refused too
    with pytest.raises(OutputDirError, match="is a symbolic link"):
        _store(out, frames, resume=True)
    assert not (tmp_path / "missing").exists()


def test_links_planted_at_temporary_names_are_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    frames = _frames()
    parts = _legacy(out, frames)
    pid = os.getpid()
    # every name the old code used for its temporary files (pid-named)
    for name in ("part-000000.csv", "part-000001.csv", "manifest.json"):
        (parts / f".{name}.tmp-{pid}").symlink_to(victim)
    for name in ("irradiance.csv", "irradiance.nc", "irradiance.png"):
        (out / f".{name}.tmp-{pid}").symlink_to(victim)

    result, computed, _ = _run(out, frames, resume=True)
    assert computed == []
    paths = save_results(result, out, plot=True)
    assert victim.read_text() == "precious"
    for path in paths.values():
        assert not os.path.islink(path) and os.path.getsize(path) > 0
    # the links in parts/ went with it (the links, not their target)
    assert not parts.exists() and victim.read_text() == "precious"


def test_atomic_write_cleans_up_and_keeps_the_umask_permissions(tmp_path):
    target = tmp_path / "result.csv"

    def broken(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda p: p.write_text("whole"))
    assert target.read_text() == "whole"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("name", ["irradiance.csv", "irradiance.nc", "irradiance.png"])
def test_a_symlinked_output_file_is_refused_and_its_target_untouched(tmp_path, name):
    frames = _frames()
    result = irradiance(frames, progress=False)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(OutputDirError, match="is a symbolic link") as err:
        save_results(result, out, plot=True)
    assert str(out / name) in str(err.value)
    assert victim.read_bytes() == b"precious" and (out / name).is_symlink()
    if name.endswith(".nc"):
        with pytest.raises(OutputDirError):
            write_netcdf(result, out / name)
        assert victim.read_bytes() == b"precious"


def test_a_symlinked_manifest_or_part_is_refused_or_not_used(tmp_path):
    frames = _frames()
    full, _, _ = _run(tmp_path / "fresh", frames, resume=False)
    parts = _legacy(tmp_path, frames)
    victim = tmp_path / "victim.csv"
    victim.write_bytes((parts / "part-000001.csv").read_bytes())  # even a valid part
    (parts / "part-000001.csv").unlink()
    (parts / "part-000001.csv").symlink_to(victim)

    result, computed, notes = _run(tmp_path, frames, resume=True)
    assert computed == [1]
    xr.testing.assert_identical(result, full)
    assert len(notes) == 1
    assert "part-000001.csv not used: it is a symbolic link" in notes[0]
    assert victim.exists() and not parts.exists()

    parts = _legacy(tmp_path / "again", frames)
    manifest = parts / "manifest.json"
    saved = tmp_path / "manifest.json"
    manifest.rename(saved)
    manifest.symlink_to(saved)
    with pytest.raises(OutputDirError, match="manifest .* is a symbolic link"):
        _store(tmp_path / "again", frames, resume=True)
    assert json.loads(saved.read_text()) == IDENTITY and manifest.is_symlink()


# ----------------------------------------------------------------------------- zarr store
def _zarr(path, resume=False, identity=None):
    times = pd.date_range("2021-03-01", periods=5, freq="12s")
    return ZarrStore(
        path,
        identity or {"dataset": "unit", "funcs": ["mean"]},
        resume,
        times=times,
        datakeys=[f"s3://b/f{i}.fits" for i in range(5)],
        part_size=2,
    )


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_symlinked_zarr_store_is_refused_and_its_target_untouched(tmp_path, resume):
    _zarr(tmp_path / "real.zarr")
    before = _snapshot(tmp_path / "real.zarr")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "reduce.zarr"
    link.symlink_to(tmp_path / "real.zarr", target_is_directory=True)
    with pytest.raises(OutputDirError, match="Zarr store .* is a symbolic link"):
        _zarr(link, resume=resume)
    assert _snapshot(tmp_path / "real.zarr") == before


def test_a_zarr_store_not_ours_is_not_deleted(tmp_path):
    theirs = tmp_path / "reduce.zarr"
    xr.Dataset({"v": ("t", np.arange(3))}).to_zarr(theirs, zarr_format=2, consolidated=True)
    before = _snapshot(theirs)
    for resume in (False, True):
        with pytest.raises(OutputDirError, match="did not write .*remove it yourself"):
            _zarr(theirs, resume=resume)
    assert _snapshot(theirs) == before


def test_a_link_inside_our_zarr_store_stops_a_resume(tmp_path):
    path = tmp_path / "reduce.zarr"
    _zarr(path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (path / "status").rename(tmp_path / "status")
    (path / "status").symlink_to(victim, target_is_directory=True)
    with pytest.raises(OutputDirError, match="Zarr store entry .*status' is a symbolic link"):
        _zarr(path, resume=True)
    assert list(victim.iterdir()) == []
    fresh = _zarr(path)  # without --resume our own store is replaced: the link, not its target
    assert fresh.done() == set() and not (path / "status").is_symlink()
    assert victim.is_dir() and list(victim.iterdir()) == []
