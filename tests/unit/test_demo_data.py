"""Synthetic AIA 94 Å demo data: frames, flare, and the CloudCatalog in memory:// or on disk."""

from __future__ import annotations

import io
import json
import uuid
import warnings

import fsspec
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from intake_helio.base.errors import TimeRangeError
from intake_helio.testing.aia import flare_profile, frame_boxes, frame_bytes, make_aia_frame
from intake_helio.testing.demo_data import DemoDataset, write_demo_dataset

T0 = pd.Timestamp("2021-03-04T05:06:00")


def _read(raw: bytes) -> tuple[fits.Header, np.ndarray]:
    """Header and image of extension 1 as astropy reads them from a file's bytes."""
    with fits.open(io.BytesIO(raw)) as hdul:
        return hdul[1].header.copy(), np.array(hdul[1].data)


def _read_fails(raw: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _read(raw)
    except Exception:
        return True
    return False


def _index_rows(fs, path: str) -> list[list[str]]:
    lines = fs.cat_file(path).decode().splitlines()
    assert lines[0] == "# start, stop, datakey, filesize"
    return [line.split(",") for line in lines[1:]]


@pytest.fixture
def mem_root():
    """A fresh memory:// bucket root, removed afterwards."""
    name = f"demo-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}/"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


# ----------------------------------------------------------------------------- frames


def test_frame_header_has_aia_keys():
    hdul = make_aia_frame(T0, size=128, exptime=2.0)
    header, _ = _read(frame_bytes(hdul))
    assert header["WAVELNTH"] == 94
    assert header["WAVEUNIT"] == "angstrom"
    assert header["TELESCOP"] == "SDO/AIA"
    assert header["INSTRUME"].startswith("AIA")
    assert header["BUNIT"] == "DN"
    assert header["QUALITY"] == 0
    assert header["EXPTIME"] == 2.0
    assert header["DN_GAIN"] > 0
    assert header["DATE-OBS"] == "2021-03-04T05:06:00.000Z"
    assert header["T_OBS"] == "2021-03-04T05:06:01.000Z"  # mid-exposure
    assert header["CTYPE1"] == "HPLN-TAN" and header["CTYPE2"] == "HPLT-TAN"
    assert header["CUNIT1"] == header["CUNIT2"] == "arcsec"
    assert header["CDELT1"] == header["CDELT2"] == pytest.approx(0.6 * 4096 / 128)
    assert header["CRPIX1"] == header["CRPIX2"] == 64.5
    assert header["CRVAL1"] == header["CRVAL2"] == 0.0
    assert 940 < header["RSUN_OBS"] < 980
    assert header["R_SUN"] == pytest.approx(header["RSUN_OBS"] / header["CDELT1"], rel=1e-4)
    assert 0.38 * 128 < header["R_SUN"] < 0.41 * 128
    assert header["BLANK"] == -32768


def test_frame_is_int16_rice_one_row_per_tile_in_extension_1():
    raw = frame_bytes(make_aia_frame(T0, size=96))
    assert len(raw) % 2880 == 0
    with fits.open(io.BytesIO(raw)) as hdul:
        assert len(hdul) == 2
        assert isinstance(hdul[0], fits.PrimaryHDU) and hdul[0].data is None
        assert isinstance(hdul[1], fits.CompImageHDU)
        assert hdul[1].data.shape == (96, 96)
    with fits.open(io.BytesIO(raw), disable_image_compression=True) as hdul:
        table = hdul[1].header
        assert table["ZIMAGE"] is True
        assert table["ZCMPTYPE"] == "RICE_1"
        assert table["ZBITPIX"] == 16
        assert (table["ZNAXIS1"], table["ZNAXIS2"]) == (96, 96)
        assert (table["ZTILE1"], table["ZTILE2"]) == (96, 1)
        assert table["NAXIS2"] == 96  # one table row per tile = per image row
        assert table["BLANK"] == -32768


def test_blank_pixels_read_as_nan():
    hdul = make_aia_frame(T0, size=128, blank_fraction=0.01)
    pixels = np.array(hdul[1].data)  # the int16 array before compression
    assert pixels.dtype == np.int16
    blank = pixels == -32768
    assert blank.sum() == round(0.01 * 128 * 128)
    _, image = _read(frame_bytes(hdul))
    assert image.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(image), blank)
    np.testing.assert_array_equal(image[~blank], pixels[~blank].astype(np.float32))


def test_no_blank_fraction_gives_no_nan():
    _, image = _read(frame_bytes(make_aia_frame(T0, size=64, blank_fraction=0.0)))
    assert not np.isnan(image).any()


def test_frame_looks_like_a_disk_with_corona_and_noise():
    size = 256
    _, image = _read(frame_bytes(make_aia_frame(T0, size=size, seed=3)))
    yy, xx = np.mgrid[:size, :size]
    rho = np.hypot(xx - (size - 1) / 2, yy - (size - 1) / 2) / (0.397 * size)
    centre = np.nanmedian(image[rho < 0.2])
    near_limb = np.nanmedian(image[(rho > 0.9) & (rho < 0.97)])
    corona = np.nanmedian(image[(rho > 1.05) & (rho < 1.15)])
    far = np.nanmedian(image[rho > 1.6])
    assert 300 < centre < 800  # a few hundred DN
    assert centre > near_limb > corona > far >= 0  # limb darkening, corona falling off
    assert np.nanmax(image) > 2 * centre  # active regions
    # Poisson noise: local scatter ~ sqrt(level) in the quiet disk centre
    patch = image[size // 2 - 8 : size // 2 + 8, size // 2 - 8 : size // 2 + 8]
    assert (
        0.5 * np.sqrt(centre) < np.nanstd(np.diff(patch, axis=1)) / np.sqrt(2) < 2 * np.sqrt(centre)
    )


def test_frames_are_deterministic_from_seed_and_time():
    a = frame_bytes(make_aia_frame(T0, size=64, seed=1))
    b = frame_bytes(make_aia_frame(T0, size=64, seed=1))
    assert a == b
    img = _read(a)[1]
    assert not np.array_equal(img, _read(frame_bytes(make_aia_frame(T0, size=64, seed=2)))[1])
    later = T0 + pd.Timedelta("4min")
    assert not np.array_equal(img, _read(frame_bytes(make_aia_frame(later, size=64, seed=1)))[1])


def test_intensity_brightens_only_the_flaring_region():
    # the flare is in the active region: its box rises by ~the factor, the quiet Sun and the
    # off-limb corner do not (same exposure); the whole frame rises a little
    boxes = frame_boxes(T0, 128)
    one = _read(frame_bytes(make_aia_frame(T0, size=128, intensity=1.0, exptime=2.9)))[1]
    three = _read(frame_bytes(make_aia_frame(T0, size=128, intensity=3.0, exptime=2.9)))[1]
    ratio = {name: box.mean(three) / box.mean(one) for name, box in boxes.items()}
    assert 0.85 * 3.0 < ratio["flare"] <= 3.0
    assert ratio["quiet"] == pytest.approx(1.0, rel=0.02)
    assert ratio["corner"] == pytest.approx(1.0, rel=0.1)
    assert 1.02 < np.nanmean(three) / np.nanmean(one) < 1.5


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 8}, {"seed": -1}, {"intensity": -1.0}, {"exptime": 0.0}, {"blank_fraction": 1.0}],
)
def test_make_aia_frame_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_aia_frame(T0, **kwargs)


def test_make_aia_frame_rejects_bad_time():
    with pytest.raises(TimeRangeError):
        make_aia_frame("not a time")


# ----------------------------------------------------------------------------- flare


def test_flare_profile_fast_rise_exponential_decay():
    times = pd.date_range("2021-01-01", periods=301, freq="1min")
    peak = pd.Timestamp("2021-01-01T01:00")
    f = flare_profile(times, peak=peak, rise="10min", decay="30min", amplitude=5.0)
    assert f.shape == (301,) and f.dtype == np.float64
    assert np.all(f >= 1.0)
    ip = times.get_loc(peak)
    assert f[ip] == 5.0 and np.argmax(f) == ip
    assert np.all(np.diff(f[: ip + 1]) >= 0) and np.all(np.diff(f[ip:]) <= 0)
    # exponential decay: e-folding of the excess over 1 after `decay`
    assert f[ip + 30] - 1 == pytest.approx(4.0 / np.e)
    assert f[ip + 60] - 1 == pytest.approx(4.0 / np.e**2)
    # the rise is faster than the decay
    assert f[ip - 20] < f[ip + 20]
    assert f[0] == pytest.approx(1.0, abs=1e-6)


def test_flare_profile_default_peak_is_40_percent_into_the_run():
    times = pd.date_range("2020-12-31T22:00", periods=48, freq="4min")
    f = flare_profile(times)
    assert f.max() == pytest.approx(4.0, rel=0.02)
    assert abs(np.argmax(f) - 0.4 * 47) <= 1
    # also accepts a plain list of strings
    g = flare_profile([str(t) for t in times])
    np.testing.assert_array_equal(f, g)


def test_flare_profile_rejects_bad_arguments():
    times = pd.date_range("2021-01-01", periods=3, freq="1min")
    with pytest.raises(ValueError, match="amplitude"):
        flare_profile(times, amplitude=0.5)
    with pytest.raises(ValueError, match="rise"):
        flare_profile(times, rise="soon")
    with pytest.raises(ValueError, match="decay"):
        flare_profile(times, decay="-5min")


# ----------------------------------------------------------------------------- dataset


def test_write_demo_dataset_default_layout(mem_root):
    ds = write_demo_dataset(mem_root)
    fs = fsspec.filesystem("memory")
    bucket = mem_root[len("memory://") :].rstrip("/")

    assert isinstance(ds, DemoDataset)
    assert ds.root == mem_root and ds.dataset_id == "aia_0094"
    assert ds.registry_url == f"{mem_root}HelioDataRegistry.json"
    assert len(ds.datakeys) == len(ds.expected_mean) == 48
    assert ds.start == pd.Timestamp("2020-12-31T22:00:00")
    assert ds.stop == ds.start + 48 * pd.Timedelta("4min")
    assert ds.times[0] == ds.start and ds.times[-1] == ds.stop - pd.Timedelta("4min")
    assert ds.datakeys[0] == (
        f"{mem_root}sdo/aia/20201231/0094/aia_lev1_94a_2020_12_31t22_00_00_00z_image_lev1.fits"
    )
    assert list(ds.datakeys) == sorted(ds.datakeys)

    # registry JSON
    registry = json.loads(fs.cat_file(f"/{bucket}/HelioDataRegistry.json"))
    assert registry["version"] == "1.0" and "modificationDate" in registry
    assert registry["registry"] == [
        {
            "endpoint": mem_root,
            "name": "Local demo (intake-helio)",
            "provider": "local",
            "region": "local",
        }
    ]

    # bucket catalog
    catalog = json.loads(fs.cat_file(f"/{bucket}/catalog.json"))
    for key in ("version", "name", "endpoint", "egress", "contact", "description", "status"):
        assert key in catalog
    assert catalog["endpoint"] == mem_root
    assert catalog["status"]["code"] == 1200
    (entry,) = catalog["catalog"]
    assert entry["id"] == "aia_0094"
    assert entry["index"] == f"{mem_root}sdo/aia/registries/"
    assert entry["title"] == "AIA 0094 FITS data (synthetic demo)"
    assert entry["start"] == "2020-12-31T22:00:00Z"
    assert entry["stop"] == "2021-01-01T01:12:00Z"
    assert entry["indextype"] == "csv" and entry["filetype"] == "fits"
    assert entry["multiyear"] is False
    assert entry["modification"].endswith("Z") and entry["description"]

    # yearly indexes cross the year boundary; each row in the year of its start
    rows = []
    for year in (2020, 2021):
        year_rows = _index_rows(fs, f"/{bucket}/sdo/aia/registries/aia_0094_{year}.csv")
        assert year_rows and all(r[0].startswith(str(year)) for r in year_rows)
        rows += year_rows
    starts = [pd.Timestamp(r[0]) for r in rows]
    assert starts == sorted(starts) and len(rows) == 48
    assert [r[2] for r in rows] == list(ds.datakeys)
    for i, (start, stop, key, size) in enumerate(rows):
        assert start.endswith("Z") and stop.endswith("Z")
        # each row ends with its exposure (AEC shortens it during the flare)
        assert pd.Timestamp(stop) - pd.Timestamp(start) == pd.Timedelta(ds.exptime[i], "s")
        assert int(size) == fs.size(key)

    # one corrupt file, near the middle, not at the flare peak, truncated to half
    assert len(ds.corrupt) == 1
    i_bad = ds.datakeys.index(ds.corrupt[0])
    assert 18 <= i_bad <= 30
    assert np.isnan(ds.expected_mean[i_bad])
    # the flare is in DN/s (the exposure shortens at it) and in the flaring region's box
    rates = np.array(ds.expected_rate)
    i_peak = int(np.nanargmax(rates))
    assert i_peak != i_bad and abs(i_peak - 0.4 * 47) <= 1
    assert rates[i_peak] > 1.1 * rates[0]  # the flare is visible in the whole frame
    factors = flare_profile(ds.times)  # the default run uses the default profile
    np.testing.assert_array_equal(ds.flare_factor, factors)
    good = ~np.isnan(rates)
    flare = ds.box_rate("flare")
    assert flare[i_peak] > 0.85 * 4.0 * flare[0]
    # linear in the flare factor: the region brightens, the quiet disk under it does not
    frac = (flare[i_peak] / flare[0] - 1) / (factors[i_peak] - 1)
    np.testing.assert_allclose(flare[good] / flare[0], 1 + frac * (factors[good] - 1), rtol=0.02)
    np.testing.assert_allclose(ds.box_rate("quiet")[good], ds.box_rate("quiet")[0], rtol=0.02)
    assert _read_fails(fs.cat_file(ds.corrupt[0]))
    assert fs.size(ds.corrupt[0]) < 0.6 * fs.size(ds.datakeys[i_bad - 1])

    # expected means equal astropy's reading of every good file
    for key, expected in zip(ds.datakeys, ds.expected_mean, strict=True):
        if key in ds.corrupt:
            continue
        header, image = _read(fs.cat_file(key))
        assert np.nanmean(image, dtype=np.float64) == pytest.approx(expected, rel=1e-6)
        assert header["DATAMEAN"] == pytest.approx(expected, rel=1e-9)


def test_write_demo_dataset_options(mem_root):
    ds = write_demo_dataset(
        mem_root,
        frames=5,
        size=64,
        start="2022-06-01T00:00:00",
        cadence="12s",
        dataset_id="aia-small",
        corrupt=0,
        seed=7,
        registry_name="Tiny",
    )
    fs = fsspec.filesystem("memory")
    bucket = mem_root[len("memory://") :].rstrip("/")
    assert ds.corrupt == () and not np.isnan(ds.expected_mean).any()
    assert ds.stop == pd.Timestamp("2022-06-01T00:01:00")
    assert ds.datakeys[1].endswith("aia_lev1_94a_2022_06_01t00_00_12_00z_image_lev1.fits")
    rows = _index_rows(fs, f"/{bucket}/sdo/aia/registries/aia-small_2022.csv")
    assert ds.exptime[0] == 2.9  # nominal before the (short) flare
    assert len(rows) == 5 and rows[0][:2] == [
        "2022-06-01T00:00:00.000Z",
        "2022-06-01T00:00:02.900Z",  # end of the exposure
    ]
    registry = json.loads(fs.cat_file(f"/{bucket}/HelioDataRegistry.json"))
    assert registry["registry"][0]["name"] == "Tiny"
    header, image = _read(fs.cat_file(ds.datakeys[0]))
    assert image.shape == (64, 64) and header["DATE-OBS"] == "2022-06-01T00:00:00.000Z"


def test_catalog_keeps_other_datasets_of_the_same_root(mem_root):
    write_demo_dataset(mem_root, frames=2, size=32, dataset_id="first", corrupt=0)
    write_demo_dataset(mem_root, frames=3, size=32, dataset_id="second", corrupt=0)
    write_demo_dataset(mem_root, frames=4, size=32, dataset_id="second", corrupt=0)
    bucket = mem_root[len("memory://") :].rstrip("/")
    catalog = json.loads(fsspec.filesystem("memory").cat_file(f"/{bucket}/catalog.json"))
    assert [d["id"] for d in catalog["catalog"]] == ["first", "second"]
    assert catalog["catalog"][1]["stop"] == "2020-12-31T22:16:00Z"


def test_reuse_shares_pixels_but_not_headers(mem_root):
    ds = write_demo_dataset(mem_root, frames=9, size=64, reuse=3, corrupt=1)
    fs = fsspec.filesystem("memory")
    images, headers = {}, {}
    for i, key in enumerate(ds.datakeys):
        if key in ds.corrupt:
            assert _read_fails(fs.cat_file(key))
            continue
        headers[i], images[i] = _read(fs.cat_file(key))
        assert headers[i]["DATE-OBS"] == ds.times[i].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert np.nanmean(images[i], dtype=np.float64) == pytest.approx(
            ds.expected_mean[i], rel=1e-6
        )
        assert headers[i]["EXPTIME"] == ds.exptime[i]
    distinct = {images[i].tobytes() for i in images}
    assert len(distinct) == 3
    # frames that share pixels share the exposure
    by_pixels = {}
    for i in images:
        by_pixels.setdefault(images[i].tobytes(), set()).add(ds.exptime[i])
    assert all(len(e) == 1 for e in by_pixels.values())
    flare = ds.box_rate("flare")
    assert np.nanmax(flare) > 3 * flare[0]  # baseline and peak both kept (short flare)
    peak = int(np.nanargmax(flare))
    assert ds.datakeys[peak] not in ds.corrupt


def test_local_directory_root(tmp_path):
    ds = write_demo_dataset(str(tmp_path / "bucket"), frames=3, size=32, corrupt=1)
    assert ds.root == (tmp_path / "bucket").as_uri() + "/"
    assert ds.datakeys[0].startswith("file://")
    assert (tmp_path / "bucket" / "catalog.json").is_file()
    assert (tmp_path / "bucket" / "HelioDataRegistry.json").is_file()
    files = sorted((tmp_path / "bucket" / "sdo" / "aia").rglob("*.fits"))
    assert len(files) == 3
    good = [k for k in ds.datakeys if k not in ds.corrupt]
    for key in good:
        with fsspec.open(key, "rb") as f:
            image = _read(f.read())[1]
        i = ds.datakeys.index(key)
        assert np.nanmean(image, dtype=np.float64) == pytest.approx(ds.expected_mean[i], rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"frames": 0}, "frames"),
        ({"frames": 3, "corrupt": 3}, "corrupt"),
        ({"corrupt": -1}, "corrupt"),
        ({"dataset_id": "aia 94"}, "dataset_id"),
        ({"reuse": 0}, "reuse"),
        ({"workers": 0}, "workers"),
        ({"cadence": "0min"}, "cadence"),
        ({"size": 4}, "size"),
    ],
)
def test_write_demo_dataset_rejects_bad_arguments(mem_root, kwargs, word):
    with pytest.raises(ValueError, match=word):
        write_demo_dataset(mem_root, **kwargs)
    assert not fsspec.filesystem("memory").exists(mem_root)


def test_workers_give_identical_files(mem_root):
    one = write_demo_dataset(mem_root + "a/", frames=4, size=64, workers=1)
    two = write_demo_dataset(mem_root + "b/", frames=4, size=64, workers=2)
    fs = fsspec.filesystem("memory")
    for ka, kb in zip(one.datakeys, two.datakeys, strict=True):
        assert fs.cat_file(ka) == fs.cat_file(kb)
    np.testing.assert_array_equal(one.expected_mean, two.expected_mean)
