"""Redirects and host names through the one door (issue 26 items 1-3), on real local servers.

A demo bucket is served by a real HTTP server on 127.0.0.1 (catalog, index and FITS files
copied from the local S3 server, URLs rewritten to the HTTP origin). Some datakeys answer
``302`` to another origin: a TCP listener that counts what it accepts, the cloud metadata
address, or (allowed in ``url-policy.allowed-hosts``) a second HTTP server holding the file.
Refused hops are frames with the reason ``URL not allowed`` and are never requested; the
good frames are valued; the allowed hop is followed without the first origin's
``X-Api-Key``; an index answering 302 elsewhere fails naming the hop's scheme and host only;
a host name that resolves to a loopback address is refused when connecting.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset
from intake_helio.testing.http_server import LocalHTTP, Redirect, loopback_name

FRAMES = 8
SECRET = "sekrit-api-key-31337"


@pytest.fixture
def web_bucket(s3):
    """The demo dataset served over HTTP: ``(web, data, {frame: path})``."""
    data = write_demo_dataset(
        "s3://helio-web/", s3.storage_options, frames=FRAMES, size=32, corrupt=0
    )
    fs = s3.filesystem()
    web = LocalHTTP().start()
    base = web.url + "/"
    paths = {}
    for key in fs.find("helio-web"):
        body = fs.cat_file(key)
        rel = key.split("/", 1)[1]
        if key.endswith((".json", ".csv")):
            body = body.replace(b"s3://helio-web/", base.encode())
        web.put("/" + rel, body)
    for i, key in enumerate(data.datakeys):
        paths[i] = "/" + key.split("/", 3)[3]
    yield web, data, paths
    web.stop()


def _index_path(web: LocalHTTP) -> str:
    return next(p for p in web.files if p.endswith(".csv"))


def test_redirected_datakeys_meet_the_policy_per_hop(web_bucket, listener):
    web, data, paths = web_bucket
    port, connections = listener
    web.put(paths[2], Redirect(f"http://127.0.0.1:{port}/evil.fits"))
    web.put(paths[5], Redirect("http://169.254.169.254/latest/meta-data/"))
    moved = web.files[paths[6]]
    web.put("/moved/six.fits", moved)
    web.put(paths[6], Redirect("/moved/six.fits"))  # same origin: followed
    bucket = ih.open_bucket(web.url + "/", cache=False)
    frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop, on_error="nan")
    result = ih.irradiance(frames)
    statuses = [str(s) for s in result["status"].values]
    assert statuses[2] == statuses[5] == "URL not allowed", statuses
    good = [i for i in range(FRAMES) if i not in (2, 5)]
    assert all(statuses[i] == "ok" for i in good), statuses
    np.testing.assert_allclose(
        result["irradiance"].values[good], np.asarray(data.expected_mean)[good], rtol=1e-6
    )
    assert any(r.path == "/moved/six.fits" for r in web.requests)
    # under the default, the error names the hop's scheme and host, never its text
    for i, where in ((2, f"to http://127.0.0.1:{port} "), (5, "to http://169.254.169.254 ")):
        with pytest.raises(ih.FrameReadError) as info:
            bucket[data.dataset_id].to_dataarray(data.start, data.stop).isel(time=[i]).compute()
        text = str(info.value)
        assert "URL not allowed" in text and "redirect 1 from" in text and where in text, text
        assert "evil" not in text and "meta-data" not in text
    assert connections() == 0


def test_too_many_redirects_is_a_reason(web_bucket):
    web, data, paths = web_bucket
    web.put(paths[1], Redirect("/loop/a"))
    web.put("/loop/a", Redirect("/loop/b"))
    web.put("/loop/b", Redirect("/loop/a"))
    bucket = ih.open_bucket(web.url + "/", cache=False)
    with dask.config.set({"intake_helio.url-policy.max-redirects": 3}):
        frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop, on_error="nan")
        result = ih.irradiance(frames)
    assert str(result["status"].values[1]) == "URL not allowed"
    hops = sum(r.path.startswith("/loop/") for r in web.requests)
    assert hops in (3, 6), hops  # each read of the frame (probe, pixels) stops after 3 hops
    with dask.config.set({"intake_helio.url-policy.max-redirects": 3}):
        frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop)
        with pytest.raises(ih.FrameReadError, match="more than 3 redirects"):
            frames.isel(time=[1]).compute()
    assert np.isfinite(result["irradiance"].values[0])


def test_credentials_stay_on_their_origin_across_a_redirect(web_bucket):
    web, data, paths = web_bucket
    with LocalHTTP({"/three.fits": web.files[paths[3]]}) as other:
        web.put(paths[3], Redirect(other.url + "/three.fits"))
        options = {"http": {"headers": {"X-Api-Key": SECRET}}}
        bucket = ih.open_bucket(web.url + "/", storage_options=options, cache=False)
        with dask.config.set({"intake_helio.url-policy.allowed-hosts": [other.url]}):
            frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop, on_error="nan")
            result = ih.irradiance(frames)
        assert [str(s) for s in result["status"].values] == ["ok"] * FRAMES
        np.testing.assert_allclose(result["irradiance"].values, data.expected_mean, rtol=1e-6)
        assert [r.path for r in other.requests] and all(
            "x-api-key" not in r.headers for r in other.requests
        )
    # the first origin got the key with every request (catalog, index and frames)
    assert web.requests and all(r.headers.get("x-api-key") == SECRET for r in web.requests)


def test_an_index_redirected_elsewhere_fails_naming_the_hop(web_bucket, listener):
    web, data, _ = web_bucket
    port, connections = listener
    web.put(_index_path(web), Redirect(f"http://127.0.0.1:{port}/secret-path/x.csv"))
    bucket = ih.open_bucket(web.url + "/", cache=False)
    with pytest.raises(ih.CatalogFormatError) as info:
        bucket[data.dataset_id].to_dataarray(data.start, data.stop)
    text = str(info.value)
    assert "URL not allowed" in text and f"to http://127.0.0.1:{port}" in text, text
    assert "secret-path" not in text
    web.put("/catalog.json", Redirect(f"http://127.0.0.1:{port}/secret-path/catalog.json"))
    with pytest.raises(ih.CatalogFormatError, match=r"bucket catalog .*redirect 1 from") as info:
        ih.open_bucket(web.url + "/", cache=False)
    assert "secret-path" not in str(info.value)
    assert connections() == 0


def test_a_name_resolving_to_loopback_is_refused_when_connecting(web_bucket, listener):
    name = loopback_name()
    if name is None:
        pytest.skip("this machine's host name does not resolve to a loopback address only")
    web, data, paths = web_bucket
    port, connections = listener
    index = _index_path(web)
    text = web.files[index].decode()
    key = paths[4]
    web.put(index, text.replace(web.url + key, f"http://{name}:{port}{key}").encode())
    with dask.config.set({"intake_helio.url-policy.allowed-schemes": ["s3", "https", "http"]}):
        bucket = ih.open_bucket(web.url + "/", cache=False)
        frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop, on_error="nan")
        result = ih.irradiance(frames)
        assert str(result["status"].values[4]) == "URL not allowed"
        assert [str(s) for i, s in enumerate(result["status"].values) if i != 4] == ["ok"] * 7
        frames = bucket[data.dataset_id].to_dataarray(data.start, data.stop)
        with pytest.raises(ih.FrameReadError, match=f"host name {name} .*loopback address"):
            frames.isel(time=[4]).compute()
    assert connections() == 0
