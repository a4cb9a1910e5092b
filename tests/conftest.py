"""Shared fixtures: a real moto S3 server on 127.0.0.1, dummy credentials, clean caches."""

from __future__ import annotations

import os
import signal

import pytest

# Real credentials and config must never be used by the tests.
for _var in list(os.environ):
    if _var.startswith("AWS_"):
        del os.environ[_var]
os.environ["AWS_CONFIG_FILE"] = "/dev/null"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("ROOT_CATALOG_REGISTRY_URL", None)

# A shell that starts the suite in the background (``nohup ... &``, CI runners) may hand it
# SIGINT ignored; Python then installs no handler, and the tests of Ctrl-C (here and in the
# children they start, which inherit the disposition) would see nothing. Restore Python's
# default handler first, as under a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server (in-process thread) on 127.0.0.1 for the whole session."""
    from intake_helio.testing.local_s3 import LocalS3

    server = LocalS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    """The local S3 server, reset before each test, with s3fs' instance cache cleared.

    Yields the ``LocalS3``; ``s3.storage_options`` reach it, ``s3.filesystem()`` is a
    fresh s3fs client.
    """
    import s3fs

    s3_server.reset()
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3fs_client(s3):
    """A fresh s3fs filesystem on the reset local server."""
    return s3.filesystem()


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration is marked ``integration``."""
    for item in items:
        if "tests/integration" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def proxy(s3):
    """A FaultProxy with no rules in front of the reset local S3 server, stopped afterwards.

    (test_reliability.py has a ``proxy`` of its own, in front of another server.)
    """
    from intake_helio.testing.fault_proxy import FaultProxy

    p = FaultProxy(s3.endpoint_url, max_seconds=120).start()
    yield p
    p.stop()


@pytest.fixture
def solar_files(s3):
    """(datakeys, raw bytes, start times) of the solar files (``tests.builders``) in S3."""
    from tests.builders import write_solar_files

    return write_solar_files(s3.filesystem())


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that accepts and never answers: ``(port, connections)``.

    ``connections()`` is how many connections it has accepted so far.
    """
    from intake_helio.testing.http_server import SilentServer

    with SilentServer() as server:
        yield int(server.url.rsplit(":", 1)[1]), lambda: server.accepted


@pytest.fixture
def cli(capsys):
    """``main(argv)`` in-process -> (exit code, stdout, stderr); pytest's SIGTERM handler kept."""
    import signal

    from intake_helio.app.cli import main

    sigterm = signal.getsignal(signal.SIGTERM)

    def run(argv):
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    signal.signal(signal.SIGTERM, sigterm)
