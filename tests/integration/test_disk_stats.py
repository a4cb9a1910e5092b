"""``disk_mean``, ``disk_sum`` and ``offdisk_mean``: the engine against numpy over sunpy's disk.

The files are AIA-like frames of :mod:`intake_helio.testing.aia` (RICE_1 int16 tiles in
extension 1, BLANK pixels) in the local S3 server, with pointing that drifts and rotates from
frame to frame, so a disk taken from another frame's header would be wrong. For every frame
the expected values are numpy's over ``coordinate_is_on_solar_disk(all_coordinates_from_map(
sunpy.map.Map(file)))`` and sunpy's pixels (NaN for BLANK excluded), for the whole frame, a
pixel cutout, strided and listed rows/columns, with other statistics and a function of
one's own, on the generic path (arithmetic) and in DN/s.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.testing.aia import BLANK, frame_bytes, make_aia_frame

sunpy_map = pytest.importorskip("sunpy.map")
from sunpy.map.maputils import all_coordinates_from_map, coordinate_is_on_solar_disk  # noqa: E402

N = 4
SIZE = 64
DISK = ["disk_mean", "disk_sum", "offdisk_mean"]
T0 = pd.Timestamp("2021-03-04T05:06:00")


def _frame(i: int, all_blank: bool = False, **header) -> bytes:
    hdul = make_aia_frame(T0 + pd.Timedelta(seconds=12 * i), size=SIZE, seed=i, blank_fraction=0.04)
    h = hdul[1].header
    h["CRPIX1"] = h["CRPIX1"] + 1.7 * i - 2.0  # pointing drifts ...
    h["CRPIX2"] = h["CRPIX2"] - 1.1 * i + 0.6
    h["CROTA2"] = 4.0 * i  # ... and rotates (frame 0: none)
    h["CRVAL1"] = 3.0 * i
    h["DSUN_OBS"] = h["DSUN_OBS"] * (1 + 0.01 * i)
    for key, value in header.items():
        if value is None:
            del h[key]
        else:
            h[key] = value
    if all_blank:
        hdul[1].data = np.full((SIZE, SIZE), BLANK, dtype=np.int16)
    return frame_bytes(hdul)


@pytest.fixture
def disk_files(s3, tmp_path):
    """(keys, local paths, times): N drifting frames, one all BLANK, one without a disk."""
    fs = s3.filesystem()
    fs.mkdir("disk")
    raws = [_frame(i) for i in range(N)]
    raws.append(_frame(N, all_blank=True))
    raws.append(_frame(N + 1, DSUN_OBS=None, RSUN_OBS=None))
    keys, paths = [], []
    for i, raw in enumerate(raws):
        key = f"s3://disk/aia94_{i}.fits"
        fs.pipe_file(key, raw)
        path = tmp_path / f"aia94_{i}.fits"
        path.write_bytes(raw)
        keys.append(key)
        paths.append(path)
    times = [T0 + pd.Timedelta(seconds=12 * i) for i in range(len(raws))]
    return keys, paths, times


def _frames(s3, disk_files, which=range(N)):
    keys, _, times = disk_files
    df = pd.DataFrame({"start": [times[i] for i in which], "datakey": [keys[i] for i in which]})
    return ih.open_frames(df, storage_options=s3.storage_options)


def _sunpy(path):
    """sunpy's pixels (float32, NaN for BLANK), on-disk mask and EXPTIME of one file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sunpy_map.Map(str(path))
        on = coordinate_is_on_solar_disk(all_coordinates_from_map(m))
    return np.asarray(m.data, dtype=np.float32), np.asarray(on), float(m.meta["exptime"])


def _expected(path, index=(slice(None), slice(None)), dn_per_s=False) -> dict[str, float]:
    data, on, exptime = _sunpy(path)
    data, on = data[index[0]][:, index[1]], on[index[0]][:, index[1]]
    if dn_per_s:
        data = data / np.float32(exptime)
    valid = ~np.isnan(data)
    d = data.astype(np.float64)
    return {
        "disk_mean": float(d[on & valid].mean()),
        "disk_sum": float(d[on & valid].sum()),
        "offdisk_mean": float(d[~on & valid].mean()),
        "mean": float(d[valid].mean()),
    }


def _check(result, paths, index=(slice(None), slice(None)), dn_per_s=False, names=DISK):
    assert list(result["status"].values) == ["ok"] * len(paths)
    for j, path in enumerate(paths):
        want = _expected(path, index, dn_per_s)
        for name in names:
            got = float(result[name].values[j])
            # DN: exact integer sums against float64 sums of exact float32 values; DN/s: the
            # float32 division of the reference
            rtol = 1e-6 if dn_per_s else 1e-12
            np.testing.assert_allclose(got, want[name], rtol=rtol, err_msg=f"{name} {path.name}")


def test_the_frames_disks_differ_and_hold_blanks(disk_files):
    """The drift moves the disk by pixels, and BLANKs fall on and off the disk."""
    _, paths, _ = disk_files
    first, last = _sunpy(paths[0]), _sunpy(paths[N - 1])
    assert np.count_nonzero(first[1] != last[1]) > 50
    for data, on, _ in (first, last):
        assert np.isnan(data[on]).any() and np.isnan(data[~on]).any()
        assert on.any() and (~on).any()


def test_whole_frames_equal_numpy_over_sunpys_disk(s3, disk_files):
    _, paths, _ = disk_files
    result = ih.map_frames(_frames(s3, disk_files), DISK, progress=False)
    _check(result, paths[:N])


def test_a_pixel_cutout_uses_the_frames_disk_in_the_window(s3, disk_files):
    _, paths, _ = disk_files
    rows, cols = slice(9, 47), slice(20, 61)
    frames = _frames(s3, disk_files).isel(y=rows, x=cols)
    result = ih.map_frames(frames, [*DISK, "mean"], progress=False)
    _check(result, paths[:N], (rows, cols), names=[*DISK, "mean"])


def test_strided_and_listed_pixels_index_the_disk_like_the_data(s3, disk_files):
    _, paths, _ = disk_files
    ys = np.arange(3, 60, 3)
    xs = np.array([40, 2, 31, 32, 33, 9, 50, 17, 63, 25])  # not sorted
    frames = _frames(s3, disk_files).isel(y=ys, x=xs)
    result = ih.map_frames(frames, DISK, progress=False)
    _check(result, paths[:N], (ys, xs))
    strided = _frames(s3, disk_files).isel(y=slice(1, 64, 2), x=slice(0, 64, 4))
    result = ih.map_frames(strided, DISK, progress=False)
    _check(result, paths[:N], (slice(1, 64, 2), slice(0, 64, 4)))


def test_with_a_function_of_ones_own_and_mean(s3, disk_files):
    _, paths, _ = disk_files

    def peak(data, header):
        return float(np.nanmax(data))

    frames = _frames(s3, disk_files).isel(time=[3, 0, 2])
    result = ih.map_frames(frames, ["mean", *DISK, peak], progress=False)
    picked = [paths[3], paths[0], paths[2]]
    _check(result, picked, names=["mean", *DISK])
    for j, path in enumerate(picked):
        assert result["peak"].values[j] == np.nanmax(_sunpy(path)[0])


def test_the_generic_path_and_dn_per_second(s3, disk_files):
    _, paths, _ = disk_files
    frames = _frames(s3, disk_files)
    changed = (frames * 1.0).isel(y=slice(4, 60), x=slice(0, 50))
    result = ih.map_frames(changed, DISK, progress=False)
    _check(result, paths[:N], (slice(4, 60), slice(0, 50)))
    result = ih.map_frames(frames, DISK, normalize=True, progress=False)
    _check(result, paths[:N], dn_per_s=True)


def test_all_blank_and_no_disk_frames_get_their_status(s3, disk_files):
    frames = _frames(s3, disk_files, which=[0, N, N + 1])
    for array in (frames, frames * 1.0, frames.isel(x=[1, 5, 9])):
        result = ih.map_frames(array, ["mean", *DISK], progress=False)
        status = list(result["status"].values)
        assert status[0] == "ok"
        assert status[1] == "all pixels blank"
        assert status[2].startswith("function error: disk_mean raised DiskGeometryError: ")
        assert "neither DSUN_OBS nor RSUN_OBS" in status[2]
        assert all(np.isnan(result[name].values[1]) for name in DISK)
    # only the frames' own statistics: the frame without a disk keeps its mean
    result = ih.map_frames(frames, ["mean"], progress=False)
    assert list(result["status"].values) == ["ok", "all pixels blank", "ok"]


def test_the_reduce_command_offers_the_disk_statistics():
    from intake_helio.app.cli import build_parser
    from intake_helio.frames.tasks import BUILTINS

    assert set(DISK) <= set(BUILTINS)
    args = build_parser().parse_args(
        [
            *("reduce", "s3://bucket/", "aia_0094", "--start", "2021-01-01"),
            *("--stop", "2021-01-02", "--out", "out", "--stat", "disk_mean"),
            *("--stat", "offdisk_mean"),
        ]
    )
    assert args.stat == ["disk_mean", "offdisk_mean"]


def test_reduce_saves_the_disk_statistics_of_every_frame(s3, tmp_path, capsys):
    """``intake-helio reduce --stat disk_mean ...`` end to end: reduce.csv equals map_frames."""
    from intake_helio.app.cli import main
    from intake_helio.testing.demo_data import write_demo_dataset

    data = write_demo_dataset("s3://disk-demo/", s3.storage_options, frames=5, size=64, corrupt=0)
    out = tmp_path / "out"
    argv = [
        *("reduce", data.root, data.dataset_id, "--start", str(data.start)),
        *("--stop", str(data.stop), "--out", str(out), "--no-progress", "--cluster", "none"),
        *("--endpoint-url", s3.endpoint_url, "--storage-option", "key=k"),
        *("--storage-option", "secret=s", "--format", "csv", "--normalize"),
        *("--stat", "disk_mean", "--stat", "disk_sum", "--stat", "offdisk_mean"),
    ]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "reduce.csv")
    assert list(table.columns) == ["time", "frame_time", "datakey", *DISK, "units", "status"]
    assert set(table["units"]) == {"DN/s"}  # --normalize
    assert set(table["status"]) == {"ok"}
    bucket = ih.open_bucket(data.root, storage_options=s3.storage_options)
    frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop)
    expected = ih.map_frames(frames, DISK, normalize=True, progress=False)
    for name in DISK:
        np.testing.assert_allclose(table[name], expected[name].values, rtol=1e-12)
    # the first frame against numpy over sunpy's disk, in DN/s
    path = tmp_path / "first.fits"
    path.write_bytes(s3.filesystem().cat_file(table["datakey"][0]))
    want = _expected(path, dn_per_s=True)
    for name in DISK:
        np.testing.assert_allclose(table[name][0], want[name], rtol=1e-6)
