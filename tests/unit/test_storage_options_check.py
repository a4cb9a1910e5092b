"""Storage option names are checked where the options are given (no sockets here)."""

from __future__ import annotations

import pickle

import pytest

from intake_helio.base.errors import ArgumentError, HelioError
from intake_helio.io.options import check_option_names, valid_option_names
from intake_helio.io.storage import StorageOptions, scope_options


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    """The check is pure: any connection attempt fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    "options, url, bad, near, label",
    [
        ({"anonn": True}, "s3://bucket/", "'anonn'", "'anon'", "s3 (s3fs.S3FileSystem)"),
        ({"anonn": True}, None, "'anonn'", "'anon'", "s3 (s3fs.S3FileSystem)"),
        # flat options given with an https registry are for the S3 buckets it names
        ({"endpoint_ur": "x"}, "https://h/r.json", "'endpoint_ur'", "'endpoint_url'", "s3 ("),
        ({"s3": {"secrte": "s"}}, None, "'secrte' in storage_options['s3']", "'secret'", "s3 ("),
        ({"s3a": {"tokn": "t"}}, None, "'tokn'", "'token'", "s3 ("),
        ({"https": {"header": {}}}, None, "'header' in storage_options['https']", "'headers'",
         "https"),
        ({"http": {"ssl_contxt": None}}, None, "'ssl_contxt'", "'ssl_context'", "http ("),
        ({"https://h:8443": {"heders": {}}}, None, "'heders' in storage_options['https://h:8443']",
         "'headers'", "https"),
        ({"config_kwargs": {"read_timout": 1}}, "s3://b/", "config_kwargs['read_timout']",
         "'read_timeout'", "botocore Config"),
        ({"https": {"client_kwargs": {"trust_envv": True}}}, None, "client_kwargs['trust_envv']",
         "'trust_env'", "aiohttp.ClientSession"),
    ],
)  # fmt: skip
def test_a_misspelt_name_is_refused_with_the_nearest_valid_one(options, url, bad, near, label):
    with pytest.raises(ArgumentError) as info:
        check_option_names(options, url)
    text = str(info.value)
    assert f"storage option {bad}" in text
    assert f"is not an option of {label}" in text
    assert f"did you mean {near}?" in text
    assert "Valid: " in text
    assert isinstance(info.value, HelioError) and isinstance(info.value, ValueError)


def test_the_message_lists_the_valid_names():
    with pytest.raises(ArgumentError) as info:
        check_option_names({"anonn": True}, "s3://b/")
    valid = str(info.value).split("Valid: ", 1)[1].split(", ")
    assert {"anon", "endpoint_url", "key", "secret", "token", "client_kwargs"} <= set(valid)
    assert valid == sorted(valid)


def test_a_name_with_no_neighbour_gets_no_guess():
    with pytest.raises(
        ArgumentError, match=r"'zzzzzz' is not an option of s3 \(s3fs\.S3FileSystem\)\. Valid: "
    ):
        check_option_names({"zzzzzz": 1}, "s3://b/")


def test_a_key_that_is_not_a_string_is_refused():
    with pytest.raises(ArgumentError, match="storage option 3 is not a name"):
        check_option_names({3: True}, "s3://b/")


S3_OPTIONS = {
    "anon": False,
    "endpoint_url": "http://127.0.0.1:9000",
    "key": "k",
    "secret": "s",
    "token": "t",
    "username": "u",
    "password": "p",
    "profile": "default",
    "use_ssl": False,
    "requester_pays": True,
    "version_aware": True,
    "s3_additional_kwargs": {"ServerSideEncryption": "AES256"},
    "client_kwargs": {"region_name": "us-east-1", "verify": False, "anything": 1},
    "config_kwargs": {"connect_timeout": 5, "retries": {"max_attempts": 1}, "s3": {}},
    # fsspec's generic options
    "skip_instance_cache": True,
    "use_listings_cache": False,
    "listings_expiry_time": 10,
    "max_paths": 100,
    "asynchronous": False,
    "loop": None,
}
HTTPS_OPTIONS = {
    "headers": {"Authorization": "Bearer x"},
    "auth": None,
    "cookies": {},
    "ssl": False,
    "proxy": None,
    "allow_redirects": True,
    "params": {"a": "b"},
    "block_size": 0,
    "simple_links": False,
    "client_kwargs": {"trust_env": True, "headers": {}, "timeout": None},
    "skip_instance_cache": True,
    "use_listings_cache": False,
}


@pytest.mark.parametrize(
    "options",
    [
        S3_OPTIONS,
        {"s3": S3_OPTIONS, "https": HTTPS_OPTIONS},
        {"s3": S3_OPTIONS, "http": HTTPS_OPTIONS, "file": {"auto_mkdir": True}},
        {"https://data.example.org": HTTPS_OPTIONS, "s3://bucket": S3_OPTIONS},
        {"memory": {"anything": 1}, "gs": {"whatever": 2}},  # not checked: unknowable
        {},
    ],
    ids=["flat-s3", "per-protocol", "per-protocol-http", "per-origin", "other", "empty"],
)
@pytest.mark.parametrize("url", [None, "s3://bucket/", "https://h/registry.json", "file:///tmp/x/"])
def test_valid_options_pass(options, url):
    check_option_names(options, url)
    check_option_names(scope_options(options, url or "s3://b/"), url)  # as scoped, too
    assert dict(StorageOptions(options)) == options


def test_https_takes_aiohttp_request_arguments():
    names = valid_option_names("https")
    assert {"headers", "auth", "ssl", "timeout", "proxy", "params", "cookies"} <= names
    assert "batch_size" not in names  # it would reach every request (a TypeError)
    assert valid_option_names("gs") is None


def test_a_custom_get_client_takes_any_client_kwargs():
    check_option_names({"https": {"get_client": object(), "client_kwargs": {"mine": 1}}})


def test_options_of_another_object_store_are_not_checked():
    check_option_names({"notanoption": 1}, "gs://bucket/")
    check_option_names({"notanoption": 1}, "az://container/")


def test_scope_options_and_storage_options_refuse_a_misspelt_name():
    with pytest.raises(ArgumentError, match="'anonn'.*did you mean 'anon'"):
        scope_options({"anonn": True}, "s3://bucket/")
    with pytest.raises(ArgumentError, match="'anonn'.*did you mean 'anon'"):
        StorageOptions({"anonn": True})
    assert scope_options(None, "s3://bucket/") is None


def test_storage_options_are_not_checked_again_when_unpickled(monkeypatch):
    options = StorageOptions({"anon": True, "key": "k"})
    import intake_helio.io.storage as storage

    def fail(*args, **kwargs):
        raise AssertionError("checked again")

    monkeypatch.setattr(storage, "check_option_names", fail)
    back = pickle.loads(pickle.dumps(options))
    assert type(back) is StorageOptions and back == options
    assert "'***'" in repr(back)
