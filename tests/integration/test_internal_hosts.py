"""Catalog content naming ``https://`` URLs on internal addresses: refused, no connection made.

Real local servers: the session's moto S3 server holds a bucket whose index rows, among its
good rows, name ``https://`` URLs on 127.0.0.1 in several spellings (dotted, ``0x7f.1``,
``2130706433``, ``127.1``, userinfo, ``localhost``), all at the port of a TCP listener that
counts the connections it accepts; a catalog whose dataset ``index`` and a registry whose
endpoint are such URLs. Under ``on_error="nan"`` the rows are frames with the reason ``URL not
allowed``, the good frames are valued, and the listener sees no connection.
"""

from __future__ import annotations

import json

import dask
import numpy as np
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset
from tests.builders import catalog_json, dataset_entry, rewrite_datakeys

FRAMES = 8


def _spellings(port: int) -> dict[int, str]:
    return {
        1: f"https://127.0.0.1:{port}/x.fits",
        3: f"https://0x7f.1:{port}/y.fits",
        4: f"https://2130706433:{port}/z.fits",
        5: f"https://user@127.1:{port}/u.fits",
        7: f"https://localhost:{port}/l.fits",
    }


@pytest.fixture
def internal_bucket(s3, listener):
    port, connections = listener
    data = write_demo_dataset(
        "s3://helio-internal/", s3.storage_options, frames=FRAMES, size=32, corrupt=0
    )
    targets = _spellings(port)
    rewrite_datakeys(s3.filesystem(), "helio-internal/sdo/aia/registries", targets)
    bucket = ih.open_bucket(data.root, storage_options=s3.storage_options, cache=False)
    return bucket, data, targets, connections


def test_internal_datakeys_are_frames_refused_unconnected(internal_bucket):
    bucket, data, targets, connections = internal_bucket
    ds = bucket[data.dataset_id]
    frames = ds.to_dataarray(data.start, data.stop, on_error="nan")
    assert frames.sizes["time"] == FRAMES
    result = ih.irradiance(frames)
    statuses = [str(s) for s in np.asarray(result["status"].values)]
    values = result["irradiance"].values
    for i, status in enumerate(statuses):
        if i in targets:
            assert status.startswith("URL not allowed: datakey"), (i, status)
            assert "loopback address" in status, status
            assert np.isnan(values[i])
        else:
            assert status == "ok", (i, status)
    good = [i for i in range(FRAMES) if i not in targets]
    np.testing.assert_allclose(values[good], np.asarray(data.expected_mean)[good], rtol=1e-6)
    assert connections() == 0


def test_internal_datakeys_raise_under_the_default(internal_bucket):
    bucket, data, _, connections = internal_bucket
    with pytest.raises(ih.IndexParseError, match="line 3: URL not allowed.*loopback"):
        bucket[data.dataset_id].to_dataarray(data.start, data.stop)
    assert connections() == 0


def test_allowed_hosts_opt_in_lets_the_origin_through(s3, listener):
    """The control: with the origin in allowed-hosts the policy lets the row through."""
    port, connections = listener
    from intake_helio.io.urlpolicy import UrlPolicy

    url = f"https://127.0.0.1:{port}/x.fits"
    assert UrlPolicy.current().refusal(url, "s3://helio-internal/catalog.json") is not None
    with dask.config.set({"intake_helio.url-policy.allowed-hosts": [f"https://127.0.0.1:{port}"]}):
        assert UrlPolicy.current().refusal(url, "s3://helio-internal/catalog.json") is None
    assert connections() == 0


def test_internal_index_prefix_and_registry_endpoint_are_refused(s3, listener):
    port, connections = listener
    fs = s3.filesystem()
    fs.mkdir("helio-internal-cat")
    root = "s3://helio-internal-cat/"
    entries = [
        dataset_entry("near", index=f"https://0x7f.1:{port}/idx/", root=root),
        dataset_entry("meta", index="https://169.254.169.254/latest/", root=root),
        dataset_entry("good", index="./idx/", root=root),
    ]
    fs.pipe_file("helio-internal-cat/catalog.json", catalog_json(root, entries).encode())
    with pytest.warns(ih.HelioWarning) as warned:
        bucket = ih.open_bucket(root, storage_options=s3.storage_options, cache=False)
    text = " ".join(str(w.message) for w in warned)
    assert "https:// on a loopback address" in text and "https:// on a link-local" in text
    assert "good" in list(bucket) and "near" not in list(bucket) and "meta" not in list(bucket)

    registry = {
        "version": "1.0",
        "registry": [
            {"endpoint": root, "name": "good"},
            {"endpoint": f"https://127.1:{port}/", "name": "loopback"},
            {"endpoint": "https://[::ffff:127.0.0.1]/", "name": "mapped"},
            {"endpoint": "https://10.0.0.1/", "name": "private"},
        ],
    }
    fs.pipe_file("helio-internal-cat/registry.json", json.dumps(registry).encode())
    with pytest.warns(ih.HelioWarning, match="skipped 3 registry entr"):
        reg = ih.open_registry(root + "registry.json", s3.storage_options)
    with pytest.raises(ih.CatalogFormatError, match=r"URL not allowed.*https:// on a loopback"):
        reg.endpoint("loopback")
    with pytest.raises(ih.CatalogFormatError, match=r"https:// on a private address"):
        reg.endpoint("private")
    assert connections() == 0
