"""The door's value (no sockets): scoped headers, trusted origins, the redirect bound setting."""

from __future__ import annotations

import functools
import pickle

import dask
import pytest

from intake_helio.base.settings import SettingsError
from intake_helio.io.storage import scope_options
from intake_helio.io.transport import Door, filesystem, get_client
from intake_helio.io.transport.session import door_for


def test_scoped_headers_and_trusted_origins():
    so = scope_options(
        {"http": {"headers": {"X-Api-Key": "k"}}}, "http://cat.example.org:8000/c.json"
    )
    door = door_for("http://cat.example.org:8000/x.fits", so["http://cat.example.org:8000"], so)
    assert door.origin == "http://cat.example.org:8000" and door.scoped == ("x-api-key",)
    assert door.trusted == ("http://cat.example.org:8000",)
    assert door.trusted_hostports() == {("cat.example.org", 8000)}
    # another origin of the same options: no scoped headers, the same trust
    other = door_for("https://data.example.org/x.fits", {}, so)
    assert other.origin is None and other.scoped == () and other.trusted == door.trusted


def test_allowed_hosts_are_trusted_and_the_bound_is_a_setting():
    with dask.config.set(
        {
            "intake_helio.url-policy.allowed-hosts": ["https://[::1]", "http://Mirror.Lan"],
            "intake_helio.url-policy.max-redirects": 0,
        }
    ):
        door = door_for("https://x.org/a", {}, None)
    assert door.max_redirects == 0
    assert door.trusted_hostports() == {("::1", 443), ("mirror.lan", 80)}
    bad = dask.config.set({"intake_helio.url-policy.max-redirects": -1})
    with bad, pytest.raises(SettingsError, match="url-policy.max-redirects=-1"):
        door_for("https://x.org/a", {}, None)


def test_http_filesystems_carry_the_door_and_pickle():
    fs, _ = filesystem("https://x.org/a.fits", {"https://x.org": {"headers": {"Auth-Token": "t"}}})
    assert fs.get_client is get_client
    door = fs.client_kwargs["door"]
    assert isinstance(door, Door) and door.scoped == ("auth-token",)
    again = pickle.loads(pickle.dumps(fs))
    assert again.client_kwargs["door"] == door
    s3, _ = filesystem("s3://bucket/key", {"anon": True})
    assert "door" not in (getattr(s3, "client_kwargs", None) or {})


async def _mine(**kwargs):  # a user's get_client
    return kwargs


def test_a_custom_get_client_is_wrapped_not_replaced():
    fs, _ = filesystem("https://y.org/a.fits", {"https": {"get_client": _mine}})
    assert isinstance(fs.get_client, functools.partial)
    assert fs.get_client.func is get_client and fs.get_client.keywords["inner"] is _mine
