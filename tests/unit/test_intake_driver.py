"""The intake drivers (helio_registry, helio_bucket, helio_frames) on memory:// catalogs.

No sockets: every catalog lives in fsspec's in-memory filesystem, and a guard makes any
network connection fail. Expected pixel values come from astropy reading the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import pickle
import socket
import uuid
from pathlib import Path

import dask.config
import fsspec
import intake
import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits

from intake_helio.base.errors import FrameReadError, HelioError, TimeRangeError
from intake_helio.base.options import OptionError
from intake_helio.intake import HelioBucketCatalog, HelioFramesSource, HelioRegistryCatalog
from intake_helio.intake.catalogs import HelioEntry
from intake_helio.testing.aia import frame_bytes, make_aia_frame
from tests.builders import catalog_json, dataset_entry, put

pytestmark = pytest.mark.filterwarnings("error")

CATALOGS = Path(__file__).resolve().parents[2] / "catalogs"
CANARIES = ("CANARY-KEY-7f3a", "CANARY-SECRET-91bd", "CANARY-TOKEN-c0de", "CANARY-PASS-5e5e")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def root():
    """A fresh bucket root in fsspec's memory filesystem, removed afterwards."""
    name = f"helio-{uuid.uuid4().hex[:10]}"
    yield f"memory://{name}/"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


def _iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_dataset(
    root,
    dataset_id="aia_0094",
    start="2020-03-01T00:00",
    n=6,
    cadence="8h",
    size=16,
    stop=None,
    write_index=True,
    write_catalog=True,
    description=None,
):
    """Frames (synthetic AIA, varying EXPTIME), a yearly index and catalog.json under root.

    Returns a DataFrame with start, stop, datakey, exptime and the float32 image astropy reads.
    """
    fs = fsspec.filesystem("memory")
    times = pd.date_range(start, periods=n, freq=cadence)
    step = pd.Timedelta(cadence)
    rows = []
    for i, t in enumerate(times):
        exptime = 2.0 + 0.25 * i
        hdul = make_aia_frame(t, size=size, seed=i, exptime=exptime, blank_fraction=0.02)
        raw = frame_bytes(hdul)
        key = f"{root}sdo/{dataset_id}/{t:%Y%m%d_%H%M%S}.fits"
        put(key, raw)
        with fits.open(io.BytesIO(raw)) as hdul:
            image = np.asarray(hdul[1].data, dtype=np.float32)
            header_exptime = float(hdul[1].header["EXPTIME"])
        rows.append((t, t + step, key, len(raw), header_exptime, image))
    df = pd.DataFrame(rows, columns=["start", "stop", "datakey", "filesize", "exptime", "image"])
    if write_index:
        write_index_files(root, dataset_id, df)
    if write_catalog:
        entry = dataset_entry(
            id=dataset_id,
            root=root,
            start=_iso(times[0]),
            stop=stop or _iso(times[-1] + step),
            description=description or f"test dataset {dataset_id}",
        )
        existing = _catalog_entries(fs, root)
        put(f"{root}catalog.json", catalog_json(root, [*existing, entry], name="Test bucket"))
    return df


def write_index_files(root, dataset_id, df):
    for year, part in df.groupby(df["start"].dt.year):
        lines = ["# start, stop, datakey, filesize"] + [
            f"{_iso(r.start)},{_iso(r.stop)},{r.datakey},{r.filesize}" for r in part.itertuples()
        ]
        put(f"{root}registries/{dataset_id}_{year}.csv", "\n".join(lines) + "\n")


def _catalog_entries(fs, root):
    path = f"{root}catalog.json"
    if not fs.exists(path):
        return []
    return json.loads(fs.cat_file(path))["catalog"]


def write_registry(root, buckets):
    """A registry JSON at ``<root>HelioDataRegistry.json`` listing ``buckets`` dicts."""
    url = f"{root}HelioDataRegistry.json"
    put(url, json.dumps({"version": "1.0", "registry": buckets}))
    return url


def expected_stack(df):
    return np.stack(list(df["image"]))


def select(df, t0, t1):
    """The reference client's half-open rule: stop >= t0 and start < t1."""
    return df[(df["stop"] >= pd.Timestamp(t0)) & (df["start"] < pd.Timestamp(t1))]


# --------------------------------------------------------------------------- entry points
def test_openers_come_from_entry_points():
    assert intake.open_helio_bucket is HelioBucketCatalog
    assert intake.open_helio_registry is HelioRegistryCatalog
    assert intake.open_helio_frames is HelioFramesSource
    assert HelioFramesSource.container == "xarray"
    assert HelioBucketCatalog.container == HelioRegistryCatalog.container == "catalog"


# --------------------------------------------------------------------------- shipped YAML
def test_heliocloud_yaml_parses_without_touching_the_network():
    cat = intake.open_catalog(str(CATALOGS / "heliocloud.yaml"))
    assert {"hdrl", "registry"} <= set(cat)

    hdrl_desc = cat._entries["hdrl"].describe()
    assert hdrl_desc["driver"] == ["helio_bucket"]
    assert hdrl_desc["container"] == "catalog"
    assert hdrl_desc["args"]["endpoint"] == "s3://gov-nasa-hdrl-data1/"
    assert hdrl_desc["args"]["storage_options"] == {"anon": True}
    reg_desc = cat._entries["registry"].describe()
    assert reg_desc["driver"] == ["helio_registry"]
    assert reg_desc["args"]["url"] == "http://heliocloud.org/catalog/HelioDataRegistry.json"

    # instantiating the catalogs reads nothing (the network guard would fail the test)
    hdrl = cat.hdrl
    assert isinstance(hdrl, HelioBucketCatalog)
    assert hdrl.endpoint == "s3://gov-nasa-hdrl-data1/"
    assert hdrl.storage_options == {"anon": True}
    assert not hdrl._entries.loaded
    registry = cat.registry
    assert isinstance(registry, HelioRegistryCatalog)
    assert registry.url == "http://heliocloud.org/catalog/HelioDataRegistry.json"
    assert not registry._entries.loaded
    assert "gov-nasa-hdrl-data1" in hdrl.yaml()


def test_demo_yaml_reads_the_endpoint_from_the_environment(monkeypatch):
    monkeypatch.setenv("INTAKE_HELIO_DEMO_ENDPOINT_URL", "http://127.0.0.1:65000")
    cat = intake.open_catalog(str(CATALOGS / "demo.yaml"))
    assert {"demo", "demo_registry"} <= set(cat)
    expected = {"endpoint_url": "http://127.0.0.1:65000", "key": "local", "secret": "local"}
    assert cat.demo.storage_options == expected
    assert cat.demo.endpoint == "s3://helio-demo/"
    assert cat.demo_registry.storage_options == expected
    assert cat.demo_registry.url == "s3://helio-demo/HelioDataRegistry.json"


def test_demo_yaml_without_the_environment_variable_says_what_to_set(monkeypatch):
    monkeypatch.delenv("INTAKE_HELIO_DEMO_ENDPOINT_URL", raising=False)
    cat = intake.open_catalog(str(CATALOGS / "demo.yaml"))
    with pytest.raises(ValueError, match="endpoint_url=''.*environment variable"):
        cat.demo  # noqa: B018


# --------------------------------------------------------------------------- laziness
def test_bucket_catalog_reads_catalog_json_on_first_access_and_indexes_on_use(root):
    cat = intake.open_helio_bucket(root)  # catalog.json does not exist yet: nothing is read
    assert not cat._entries.loaded
    df = write_dataset(root, write_index=False)  # catalog.json and frames, no index yet
    assert list(cat) == ["aia_0094"]
    assert cat._entries.loaded
    src = cat.aia_0094(start="2020-03-01", stop="2020-03-03")  # no index read here
    write_index_files(root, "aia_0094", df)  # the index appears only now
    assert src.discover()["shape"] == (6, 16, 16)


def test_force_reload_rereads_the_bucket(root):
    write_dataset(root, dataset_id="aia_0094")
    cat = intake.open_helio_bucket(root)
    assert list(cat) == ["aia_0094"]
    write_dataset(root, dataset_id="aia_0131")
    assert list(cat) == ["aia_0094"]  # no silent re-reads
    cat.force_reload()
    assert sorted(cat) == ["aia_0094", "aia_0131"]


# --------------------------------------------------------------------------- parameters
def test_entries_declare_start_stop_defaulting_to_the_last_day(root):
    df = write_dataset(root, n=6, cadence="8h")  # 2020-03-01T00:00 .. 2020-03-02T24:00
    cat = intake.open_helio_bucket(root)
    desc = cat._entries["aia_0094"].describe()
    params = {p["name"]: p for p in desc["user_parameters"]}
    assert set(params) == {"start", "stop"}
    assert params["start"]["type"] == params["stop"]["type"] == "datetime"
    stop = pd.Timestamp("2020-03-03T00:00")
    assert params["stop"]["default"] == stop
    assert params["start"]["default"] == stop - pd.Timedelta("1D")
    assert not isinstance(params["start"]["default"], str)

    frames = cat.aia_0094.to_dask()  # the default: only the last day
    want = select(df, stop - pd.Timedelta("1D"), stop)
    assert 0 < len(want) < len(df)
    np.testing.assert_array_equal(frames["time"].values, want["start"].values)


def test_default_window_is_clipped_to_the_dataset_start(root):
    df = write_dataset(root, n=3, cadence="1h")  # a 3-hour dataset
    src = intake.open_helio_bucket(root).aia_0094
    assert src.time_range() == (df["start"].iloc[0], df["stop"].iloc[-1])
    np.testing.assert_array_equal(src.read().values, expected_stack(df))


def test_default_window_follows_the_dask_setting(root):
    """intake_helio.default-window sets the window of entries and of direct sources."""
    df = write_dataset(root, n=12, cadence="8h")  # 2020-03-01T00:00 .. 2020-03-05T00:00
    stop = pd.Timestamp("2020-03-05")
    one_day = (stop - pd.Timedelta("1D"), stop)
    two_days = (stop - pd.Timedelta("2D"), stop)
    assert HelioFramesSource(root, "aia_0094").time_range() == one_day
    with dask.config.set({"intake_helio.default-window": "2 days"}):
        direct = HelioFramesSource(root, "aia_0094")
        assert direct.time_range() == two_days
        cat = intake.open_helio_bucket(root)
        params = {p["name"]: p for p in cat._entries["aia_0094"].describe()["user_parameters"]}
        assert params["start"]["default"] == two_days[0]
        assert "2 days" in params["start"]["description"]
        # only one end given, outside the default window: the other end is one window away
        late = HelioFramesSource(root, "aia_0094", start="2020-03-10")
        assert late.time_range() == (pd.Timestamp("2020-03-10"), pd.Timestamp("2020-03-12"))
        early = HelioFramesSource(root, "aia_0094", stop="2020-03-03")
        assert early.time_range() == (pd.Timestamp("2020-03-01"), pd.Timestamp("2020-03-03"))
    # the window is fixed once resolved (entries and a source's range do not drift)
    assert cat.aia_0094.time_range() == two_days
    assert direct.time_range() == two_days
    frames = direct.to_dask()
    want = select(df, *two_days)
    np.testing.assert_array_equal(frames["time"].values, want["start"].values)
    assert HelioFramesSource(root, "aia_0094").time_range() == one_day


def test_bad_default_window_setting_names_the_key(root):
    write_dataset(root)
    source = HelioFramesSource(root, "aia_0094")
    with (
        dask.config.set({"intake_helio.default-window": "soon"}),
        pytest.raises(ValueError, match="intake_helio.default-window='soon'"),
    ):
        source.time_range()


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        ("2020-03-01T06:00", "2020-03-02T00:00"),
        ("2020-03-01T06:00:00.000Z", "2020-03-02T00:00Z"),
        (dt.datetime(2020, 3, 1, 6), dt.date(2020, 3, 2)),
        (np.datetime64("2020-03-01T06:00"), pd.Timestamp("2020-03-02")),
        (pd.Timestamp("2020-03-01T07:00", tz="Europe/Paris"), "2020-03-02T01:00+01:00"),
    ],
)
def test_start_stop_accept_strings_datetimes_and_timestamps_without_warnings(root, start, stop):
    df = write_dataset(root)
    src = intake.open_helio_bucket(root).aia_0094(start=start, stop=stop)
    assert src.time_range() == (pd.Timestamp("2020-03-01T06:00"), pd.Timestamp("2020-03-02"))
    want = select(df, "2020-03-01T06:00", "2020-03-02")
    np.testing.assert_array_equal(src.to_dask()["time"].values, want["start"].values)


def test_plain_intake_entries_would_warn_for_string_times(root):
    """Why HelioEntry exists: intake 2.0.9 warns for each string value of a parameter."""
    write_dataset(root)
    bucket = intake.open_helio_bucket(root)
    mine = bucket._entries["aia_0094"]
    plain = intake.catalog.local.LocalCatalogEntry(
        name="plain",
        description="",
        driver=HelioFramesSource,
        args=mine._open_args,
        parameters=mine._user_parameters,
    )
    with pytest.warns(UserWarning, match="getshell=False"):
        plain.get(start="2020-03-01", stop="2020-03-02")
    src = mine.get(start="2020-03-01", stop="2020-03-02")  # no warning (filterwarnings=error)
    assert src.time_range() == (pd.Timestamp("2020-03-01"), pd.Timestamp("2020-03-02"))


def test_calling_a_source_keeps_earlier_arguments(root):
    write_dataset(root)
    src = intake.open_helio_bucket(root).aia_0094(start="2020-03-01", header_keys=["EXPTIME"])
    narrower = src(stop="2020-03-01T12:00")
    assert narrower.time_range() == (pd.Timestamp("2020-03-01"), pd.Timestamp("2020-03-01T12:00"))
    assert narrower.header_keys == ("EXPTIME",)
    assert src(start=None).time_range()[0] == pd.Timestamp("2020-03-02")  # back to the default


def test_yaml_catalog_with_yaml_timestamp_defaults(root, tmp_path):
    df = write_dataset(root)
    text = f"""
metadata:
  version: 1
sources:
  aia:
    driver: helio_frames
    args:
      endpoint: {root}
      dataset: aia_0094
      start: "{{{{ start }}}}"
      stop: "{{{{ stop }}}}"
      cutout: {{y: [2, 10], x: [4, 12]}}
    parameters:
      start: {{description: start, type: datetime, default: 2020-03-01T08:00:00}}
      stop: {{description: stop, type: datetime, default: 2020-03-01 16:00}}
"""
    path = tmp_path / "frames.yaml"
    path.write_text(text)
    cat = intake.open_catalog(str(path))
    frames = cat.aia.read()
    want = select(df, "2020-03-01T08:00", "2020-03-01T16:00")
    np.testing.assert_array_equal(frames.values, expected_stack(want)[:, 2:10, 4:12])


# --------------------------------------------------------------------------- reading
def test_discover_reads_headers_only(root):
    """With every file cut after its headers, discover works and reading fails."""
    df = write_dataset(root)
    fs = fsspec.filesystem("memory")
    for key in df["datakey"]:
        raw = fs.cat_file(key)
        with fits.open(io.BytesIO(raw), disable_image_compression=True) as hdul:
            data_start = hdul.fileinfo(1)["datLoc"]
        fs.pipe_file(key, raw[:data_start])
    src = intake.open_helio_bucket(root).aia_0094(start="2020-03-01", stop="2020-03-03")
    info = src.discover()
    assert info["shape"] == (6, 16, 16)
    assert info["dtype"] == np.float32
    assert info["dims"] == ("time", "y", "x")
    assert {"time", "y", "x", "datakey", "stop", "filesize"} <= set(info["coords"])
    assert info["coords"]["datakey"] == ("time",)
    assert src.npartitions == 6
    assert info["metadata"]["time_range"] == ["2020-03-01T00:00:00", "2020-03-03T00:00:00"]
    with pytest.raises(FrameReadError, match="truncated"):
        src.read()


def test_to_dask_and_read_match_astropy(root):
    df = write_dataset(root)
    src = intake.open_helio_bucket(root).aia_0094(
        start="2020-03-01", stop="2020-03-03", header_keys=["EXPTIME"]
    )
    lazy = src.to_dask()
    assert lazy.chunks is not None  # dask-backed
    assert lazy.dims == ("time", "y", "x") and lazy.shape == (6, 16, 16)
    assert np.isnan(expected_stack(df)).any()  # BLANK pixels are NaN in both
    np.testing.assert_array_equal(lazy.values, expected_stack(df))
    got = src.read()
    assert got.chunks is None  # computed
    np.testing.assert_array_equal(got.values, expected_stack(df))
    np.testing.assert_array_equal(got["EXPTIME"].values, df["exptime"].values)
    np.testing.assert_array_equal(got["datakey"].values, df["datakey"].values)
    assert src.read_partition(0).identical(got)


def test_cutout_units_and_on_error_pass_through(root):
    df = write_dataset(root)
    fs = fsspec.filesystem("memory")
    bad = df["datakey"].iloc[2]
    fs.pipe_file(bad, b"not a FITS file")
    cat = intake.open_helio_bucket(root)
    src = cat.aia_0094(
        start="2020-03-01",
        stop="2020-03-03",
        cutout={"y": slice(3, 9), "x": slice(5, 13)},
        units="DN/s",
        on_error="nan",
    )
    got = src.read()
    want = expected_stack(df)[:, 3:9, 5:13] / df["exptime"].to_numpy()[:, None, None]
    good = [i for i in range(len(df)) if i != 2]
    np.testing.assert_allclose(got.values[good], want[good], rtol=1e-6)
    assert np.isnan(got.values[2]).all()
    assert got.attrs["units"] == "DN/s"
    with pytest.raises(FrameReadError, match="not FITS"):
        cat.aia_0094(start="2020-03-01", stop="2020-03-03").read()


def test_on_error_nan_gives_a_reason_per_frame(root):
    df = write_dataset(root)
    fsspec.filesystem("memory").pipe_file(df["datakey"].iloc[2], b"not a FITS file")
    src = intake.open_helio_bucket(root).aia_0094(
        start="2020-03-01", stop="2020-03-03", on_error="nan"
    )
    status = src.read()["read_status"].values.tolist()
    assert status[:2] == ["ok", "ok"] and status[3:] == ["ok"] * 3
    assert status[2] == "not FITS"


def test_close_drops_the_array_and_reopens(root):
    write_dataset(root)
    src = intake.open_helio_bucket(root).aia_0094
    first = src.to_dask()
    assert src.to_dask() is first
    src.close()
    again = src.to_dask()
    assert again is not first and again.identical(first)


def test_bad_arguments_name_the_value(root):
    write_dataset(root)
    cat = intake.open_helio_bucket(root)
    with pytest.raises(KeyError, match="no entry 'aia_094'.*did you mean 'aia_0094'"):
        cat["aia_094"]
    with pytest.raises(AttributeError):
        cat.aia_094  # noqa: B018
    with pytest.raises(ValueError, match="units='W'"):
        cat.aia_0094(units="W")
    with pytest.raises(ValueError, match="on_error='skip'"):
        cat.aia_0094(on_error="skip")
    with pytest.raises(TimeRangeError, match="not before"):
        cat.aia_0094(start="2020-03-02", stop="2020-03-01")
    with pytest.raises(TimeRangeError, match="yesterday"):
        cat.aia_0094(start="yesterday")
    with pytest.raises(ValueError, match="endpoint"):
        HelioBucketCatalog("")
    with pytest.raises(KeyError, match="did you mean 'aia_0094'"):
        HelioFramesSource(root, "aia_009").to_dask()


def test_driver_errors_are_helio_errors(root):
    """Every error the drivers raise is a HelioError and keeps its built-in type."""
    write_dataset(root)
    cat = intake.open_helio_bucket(root)
    cases = [
        (OptionError, lambda: cat.aia_0094(units="W")),
        (OptionError, lambda: cat.aia_0094(on_error="skip")),
        (TimeRangeError, lambda: cat.aia_0094(start="2020-03-02", stop="2020-03-01")),
        (ValueError, lambda: HelioFramesSource(root, "")),
        (TypeError, lambda: HelioBucketCatalog(root, storage_options=["anon"])),
        (ValueError, lambda: HelioBucketCatalog(root, storage_options={"endpoint_url": " "})),
        (ValueError, lambda: HelioRegistryCatalog(storage_options={"s3": {"endpoint_url": ""}})),
        (TypeError, lambda: HelioRegistryCatalog(url=42)),
        (KeyError, lambda: cat["aia_094"]),
        (KeyError, lambda: cat[("aia_094",)]),
        (KeyError, lambda: cat[["aia_094"]]),
        (KeyError, lambda: cat[3]),
        (IndexError, lambda: cat.aia_0094.read_partition(1)),
    ]
    for builtin, call in cases:
        with pytest.raises(builtin) as info:
            call()
        assert isinstance(info.value, HelioError), (builtin, info.value)


# --------------------------------------------------------------------------- navigation
def test_registry_to_buckets_to_datasets_and_access_styles(root):
    other = root.rstrip("/") + "-b/"
    df = write_dataset(root)
    write_dataset(other, dataset_id="aia_0171")
    url = write_registry(
        root,
        [
            {"endpoint": root, "name": "Bucket A", "region": "local"},
            {"endpoint": other, "name": "Bucket B", "region": "local"},
        ],
    )
    try:
        reg = intake.open_helio_registry(url)
        assert list(reg) == ["Bucket A", "Bucket B"]
        a = reg["Bucket A"]
        assert isinstance(a, HelioBucketCatalog) and a.endpoint == root and a.name == "Bucket A"
        assert list(a) == ["aia_0094"]
        assert reg["Bucket B"].aia_0171.discover()["shape"][1:] == (16, 16)
        # ["a.b"], ["a"]["b"], [("a", "b")] and dotted attribute access all reach the dataset
        for src in (
            reg["Bucket A.aia_0094"],
            reg["Bucket A"]["aia_0094"],
            reg["Bucket A", "aia_0094"],
            intake.open_helio_bucket(root).aia_0094,
        ):
            assert isinstance(src, HelioFramesSource)
            assert src.time_range() == (pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-03"))
        walked = reg.walk(depth=2)
        assert set(walked) == {"Bucket A", "Bucket B", "Bucket A.aia_0094", "Bucket B.aia_0171"}
        assert reg.metadata["url"] == url
        src = walked["Bucket A.aia_0094"](start="2020-03-01", stop="2020-03-03")
        np.testing.assert_array_equal(src.read().values, expected_stack(df))
    finally:
        fsspec.filesystem("memory").rm(other.replace("memory://", "/"), recursive=True)


def test_registry_names_repeat_then_regions_then_endpoints(root):
    buckets = [
        {"endpoint": "s3://one/", "name": "Same", "region": "us-east-1"},
        {"endpoint": "s3://two/", "name": "Same", "region": "us-west-2"},
        {"endpoint": "s3://three/", "name": "Twin", "region": "eu-west-1"},
        {"endpoint": "s3://four/", "name": "Twin", "region": "eu-west-1"},
        {"endpoint": "s3://five/", "name": "Unique"},
    ]
    reg = intake.open_helio_registry(write_registry(root, buckets))
    assert list(reg) == [
        "Same (us-east-1)",
        "Same (us-west-2)",
        "Twin (s3://three/)",
        "Twin (s3://four/)",
        "Unique",
    ]
    assert reg["Same (us-west-2)"].endpoint == "s3://two/"  # lazy: s3://two/ is not read
    assert reg._entries["Twin (s3://four/)"].describe()["metadata"]["region"] == "eu-west-1"


# --------------------------------------------------------------------------- secrets
def _canary_options():
    key, secret, token, password = CANARIES
    return {
        "key": key,
        "secret": secret,
        "token": token,
        "client_kwargs": {"password": password},
        "anon": False,
    }


def _assert_no_canary(text):
    for canary in CANARIES:
        assert canary not in text


def test_yaml_repr_describe_never_show_credentials(root):
    write_dataset(root)
    url = write_registry(root, [{"endpoint": root, "name": "Bucket A"}])
    options = _canary_options()
    reg = intake.open_helio_registry(url, storage_options=options)
    bucket = reg["Bucket A"]
    src = bucket.aia_0094(start="2020-03-01", header_keys=["EXPTIME"])
    direct = HelioFramesSource(root, "aia_0094", storage_options=options)
    direct_cat = intake.open_helio_bucket(root, storage_options=options)
    outputs = []
    for obj in (reg, bucket, src, direct, direct_cat):
        outputs += [obj.yaml(), repr(obj), str(obj), str(obj.describe())]
    outputs += [bucket.serialize(), reg.serialize(), str(src.discover())]
    outputs += [repr(e) + str(e.describe()) + str(e._yaml()) for e in reg.walk(depth=2).values()]
    for text in outputs:
        _assert_no_canary(text)
    assert "'***'" in src.yaml() and "'***'" in bucket.yaml() and "'***'" in reg.yaml()
    assert "'***'" in direct.yaml() and "'***'" in str(direct.describe())
    # ... while the credentials are still used (and survive pickling)
    assert src.storage_options == options
    assert pickle.loads(pickle.dumps(src)).storage_options == options
    assert pickle.loads(pickle.dumps(bucket)).storage_options == options


def test_describe_of_yaml_opened_catalogs_hides_credentials(root, tmp_path):
    write_dataset(root)
    key, secret, _, _ = CANARIES
    path = tmp_path / "cat.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "metadata": {"version": 1},
                "sources": {
                    "mine": {
                        "driver": "helio_bucket",
                        "args": {
                            "endpoint": root,
                            "storage_options": {"key": key, "secret": secret},
                        },
                    }
                },
            }
        )
    )
    cat = intake.open_catalog(str(path))
    mine = cat.mine
    assert mine.storage_options == {"key": key, "secret": secret}
    for text in (mine.yaml(), repr(mine), str(mine.describe()), mine.aia_0094.yaml()):
        _assert_no_canary(text)


# --------------------------------------------------------------------------- serialisation
def test_pickled_sources_still_read(root):
    df = write_dataset(root)
    src = intake.open_helio_bucket(root).aia_0094(
        start="2020-03-01T08:00",
        stop="2020-03-02T08:00",
        cutout={"y": slice(0, 8), "x": slice(8, 16)},
        header_keys=["EXPTIME"],
    )
    clone = pickle.loads(pickle.dumps(src))
    assert isinstance(clone, HelioFramesSource) and clone._frames is None
    assert clone.time_range() == src.time_range() and clone.cutout == src.cutout
    got = clone.to_dask()
    want = select(df, "2020-03-01T08:00", "2020-03-02T08:00")
    np.testing.assert_array_equal(got.values, expected_stack(want)[:, 0:8, 8:16])
    np.testing.assert_array_equal(got["EXPTIME"].values, want["exptime"].values)


def test_source_yaml_round_trips_through_intake(root, tmp_path):
    df = write_dataset(root)
    src = intake.open_helio_bucket(root).aia_0094(
        start="2020-03-01T08:00", stop="2020-03-02T08:00", cutout={"y": slice(2, 6)}
    )
    path = tmp_path / "one.yaml"
    path.write_text(src.yaml())
    again = intake.open_catalog(str(path))["aia_0094"]
    assert again.time_range() == src.time_range()
    want = select(df, "2020-03-01T08:00", "2020-03-02T08:00")
    np.testing.assert_array_equal(again.read().values, expected_stack(want)[:, 2:6, :])


def test_serialized_bucket_catalog_opens_with_the_same_defaults(root, tmp_path):
    df = write_dataset(root)
    cat = intake.open_helio_bucket(root)
    path = tmp_path / "bucket.yaml"
    path.write_text(cat.serialize())
    again = intake.open_catalog(str(path))
    assert list(again) == ["aia_0094"]
    assert isinstance(again._entries["aia_0094"], intake.catalog.local.LocalCatalogEntry)
    frames = again.aia_0094.read()  # YAML timestamp defaults: no warning
    want = select(df, "2020-03-02", "2020-03-03")
    np.testing.assert_array_equal(frames.values, expected_stack(want))


def test_catalog_text_is_data_not_jinja(root):
    text = "Uses {{ braces }}, {% raw %} and {# a hash; not templates."
    write_dataset(root, description=text)
    src = intake.open_helio_bucket(root).aia_0094
    assert src.metadata["description"] == text
    assert src.description.endswith(text)


def test_helio_entry_is_what_bucket_catalogs_hold(root):
    write_dataset(root)
    cat = intake.open_helio_bucket(root)
    assert isinstance(cat._entries["aia_0094"], HelioEntry)
    assert cat.aia_0094.describe()["args"]["start"] == "{{ start }}"
    assert cat.aia_0094.describe()["metadata"]["title"] == "aia_0094 FITS data"
    assert cat.metadata["catalog_version"] == "1.0" and "version" not in cat.metadata
