"""A misspelt storage option, a reversed arcsec cutout and the tolerance warning (issue 28).

Real local servers: the session's moto S3 server, and a listening socket that counts the
connections made to it (none: the options are refused before any request).
"""

from __future__ import annotations

import warnings

import dask
import pandas as pd
import pytest

import intake_helio as ih
import intake_helio.frames.build as build
from intake_helio.base.errors import ArgumentError
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import demo_job_argv

N = 6


@pytest.fixture
def demo(s3):
    data = write_demo_dataset("s3://helio-demo/", s3.storage_options, frames=N, size=32, corrupt=0)
    return s3, data


@pytest.fixture
def no_frame_read(monkeypatch):
    """Fail the test if a frame (header or pixels) is read."""

    def refuse(*args, **kwargs):
        raise AssertionError("a frame was read")

    monkeypatch.setattr(build, "_probe", refuse)


def _typo(text: str) -> None:
    assert "storage option 'anonn'" in text
    assert "is not an option of s3 (s3fs.S3FileSystem)" in text
    assert "did you mean 'anon'?" in text
    assert "AioSession" not in text and "check the network" not in text


# ----------------------------------------------------------------------------- storage options
def test_open_bucket_refuses_a_misspelt_option_before_any_request(listener):
    port, connections = listener
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(ArgumentError) as info:
        ih.open_bucket("s3://helio-demo/", {"anonn": True, "endpoint_url": endpoint})
    _typo(str(info.value))
    assert connections() == 0


def test_the_listener_sees_a_request_when_the_options_are_valid(listener):
    # control for the test above: the same call with valid options reaches the endpoint
    port, connections = listener
    endpoint = f"http://127.0.0.1:{port}"
    settings = {"intake_helio.timeouts.read": 0.5, "intake_helio.timeouts.attempts": 1}
    with dask.config.set(settings), pytest.raises(OSError):
        ih.open_bucket("s3://helio-demo/", {"anon": True, "endpoint_url": endpoint})
    assert connections() >= 1


def test_open_registry_refuses_a_misspelt_option_per_protocol(demo, listener):
    port, connections = listener
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(ArgumentError, match=r"'anonn' in storage_options\['s3'\].*'anon'"):
        ih.open_registry(endpoint + "/HelioDataRegistry.json", {"s3": {"anonn": True}})
    with pytest.raises(ArgumentError, match=r"'header' in storage_options\['https'\].*'headers'"):
        ih.open_registry(endpoint + "/HelioDataRegistry.json", {"https": {"header": {}}})
    assert connections() == 0


def test_to_dataarray_refuses_a_misspelt_option_not_each_frame(demo, no_frame_read, monkeypatch):
    s3, data = demo
    bucket = ih.open_bucket(data.root, s3.storage_options)
    ds = bucket[data.dataset_id]

    def no_index(*args, **kwargs):
        raise AssertionError("the index was read")

    monkeypatch.setattr(type(ds), "files", no_index)  # refused before the index, too
    for on_error in ("nan", "raise"):
        with pytest.raises(ArgumentError) as info:
            ds.to_dataarray(
                data.start,
                data.stop,
                on_error=on_error,
                storage_options={**s3.storage_options, "anonn": True},
            )
        _typo(str(info.value))


def test_open_frames_and_open_channels_refuse_a_misspelt_option(demo, no_frame_read):
    s3, data = demo
    bucket = ih.open_bucket(data.root, s3.storage_options)
    files = bucket[data.dataset_id].files(data.start, data.stop)
    with pytest.raises(ArgumentError) as info:
        ih.open_frames(files, storage_options={"anonn": True})
    _typo(str(info.value))
    with pytest.raises(ArgumentError) as info:
        ih.open_channels(bucket, [data.dataset_id], storage_options={"anonn": True})
    _typo(str(info.value))


def test_valid_options_still_read_every_frame(demo):
    s3, data = demo
    options = {"s3": {**s3.storage_options, "config_kwargs": {"connect_timeout": 5}}}
    bucket = ih.open_bucket(data.root, options)
    frames = bucket[data.dataset_id].to_dataarray(
        data.start, data.stop, on_error="nan", storage_options={**s3.storage_options, "anon": False}
    )
    assert list(frames["read_status"].values) == ["ok"] * N


def test_the_cli_exits_2_naming_the_option(demo, tmp_path, cli):
    s3, data = demo
    code, out, err = cli(
        demo_job_argv(
            "irradiance",
            data,
            tmp_path / "out",
            "--storage-option",
            "anonn=true",
            endpoint_url=s3.endpoint_url,
            key=s3.key,
            secret=s3.secret,
        )
    )
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("intake-helio: error: "), err
    _typo(lines[0])
    assert s3.secret not in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- cutouts
@pytest.mark.parametrize(
    "cutout, shown",
    [
        (dict(Tx=slice(200, -200), Ty=slice(-100, 100)), "cutout['Tx'] runs from 200 to -200"),
        (dict(Tx=slice(-200, 200), Ty=slice(100, -100)), "cutout['Ty'] runs from 100 to -100"),
        (dict(Tx=[200, -200], Ty=[-100, 100]), "cutout['Tx'] runs from 200 to -200"),  # YAML
    ],
    ids=["Tx", "Ty", "lists"],
)
def test_a_reversed_arcsec_cutout_is_refused(demo, no_frame_read, cutout, shown):
    s3, data = demo
    bucket = ih.open_bucket(data.root, s3.storage_options)
    with pytest.raises(ArgumentError) as info:
        bucket[data.dataset_id].to_dataarray(data.start, data.stop, cutout=cutout)
    text = str(info.value)
    assert f"{shown} arcsec: the bounds are reversed" in text
    assert "in the order (low, high)" in text
    with pytest.raises(ArgumentError, match=r"reversed; give them in the order \(low, high\)"):
        ih.open_channels(bucket, [data.dataset_id], cutout=cutout)


def test_a_reversed_quantity_cutout_is_refused(demo, no_frame_read):
    u = pytest.importorskip("astropy.units")
    s3, data = demo
    ds = ih.open_bucket(data.root, s3.storage_options)[data.dataset_id]
    box = dict(Tx=slice(-200 * u.arcsec, 200 * u.arcsec), Ty=slice(2 * u.arcmin, -2 * u.arcmin))
    with pytest.raises(ArgumentError, match=r"cutout\['Ty'\] runs from 120 to -120 arcsec"):
        ds.to_dataarray(data.start, data.stop, cutout=box)


def test_an_ordered_arcsec_cutout_is_read(demo):
    s3, data = demo
    ds = ih.open_bucket(data.root, s3.storage_options)[data.dataset_id]
    box = dict(Tx=slice(-200, 200), Ty=[-100, 100])
    frames = ds.to_dataarray(data.start, data.stop, cutout=box, on_error="nan")
    assert frames.sizes["time"] == N
    assert float(frames["Tx"].min()) >= -200 - 1 and float(frames["Tx"].max()) <= 200 + 1
    assert list(frames["read_status"].values) == ["ok"] * N


# ----------------------------------------------------------------------------- tolerance warning
def test_the_tolerance_warning_shows_the_reason_as_plain_text(demo):
    s3, data = demo
    write_demo_dataset(
        "s3://helio-demo/",
        s3.storage_options,
        frames=N,
        size=32,
        corrupt=0,
        dataset_id="aia_0171",
        start=data.start + pd.Timedelta(seconds=3),
        seed=7,
    )
    bucket = ih.open_bucket(data.root, s3.storage_options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ih.open_channels(
            bucket, [data.dataset_id, "aia_0171"], data.start, data.stop, tolerance="1s"
        )
    texts = [str(w.message) for w in caught if issubclass(w.category, ih.HelioWarning)]
    assert len(texts) == 1, texts
    assert "<Reason" not in texts[0]
    assert "all its frames are 'no frame within tolerance'; raise the tolerance" in texts[0]
