"""Credentials never leak; anonymous access only when asked; no pickle; safe YAML and JSON.

Canary credentials (access key, secret, session token, gateway password, API token) are
used for real work on the local S3 server (moto accepts any key) and a real local
dask-gateway; then every output is searched for them: log records of ``intake_helio``,
``distributed``, ``s3fs`` and ``dask_gateway`` at DEBUG (in this process and, from the
workers, ``get_worker_logs``), this process's and the workers' stdout/stderr
(file-descriptor capture), the progress bar, reprs of buckets, registries, datasets,
sources, catalogs, frames and results, ``yaml()``/``serialize()`` dumps, every saved file
(CSV, netCDF with its attributes, ``parts.zarr`` with the run's identity), the gateway
server's log, and the
``str``/``repr``/traceback of errors raised for bad credentials and missing buckets.
"""

from __future__ import annotations

import base64
import logging
import re
import traceback
from pathlib import Path

import dask
import pytest
import xarray as xr

import intake_helio as ih
import intake_helio.compute.progress as progress_mod
from intake_helio.app.job import run_irradiance_job
from intake_helio.frames.spec import ReadPlan
from intake_helio.io.storage import StorageOptions
from intake_helio.io.transport import filesystem
from intake_helio.testing.demo_data import write_demo_dataset
from intake_helio.testing.fault_proxy import FaultProxy, FaultRule
from intake_helio.testing.local_s3 import LocalS3

CANARY_KEY = "AKIACANARY0SEC7E5T01"
CANARY_SECRET = "canary-secret-e1b7c04d9a2f"
CANARY_TOKEN = "canary-session-token-8c3b52f0de"
CANARY_PASSWORD = "canary-gateway-password-41fd0a"
CANARY_API_TOKEN = "canary-api-token-93ab61ce70"
CANARY_ENV_SECRET = "canary-worker-env-secret-5a2e"
CANARIES = (
    CANARY_KEY,
    CANARY_SECRET,
    CANARY_TOKEN,
    CANARY_PASSWORD,
    CANARY_API_TOKEN,
    CANARY_ENV_SECRET,
)
LOGGERS = ("intake_helio", "distributed", "s3fs", "dask_gateway")
FRAMES = 8


def leaks(*things) -> list[str]:
    """The canaries found in the text (str and repr) of ``things``, also inside HTTP basic
    auth values (``Basic base64(user:password)``)."""
    text = "\n".join(t if isinstance(t, str) else f"{t!s}\n{t!r}" for t in things)
    for m in re.finditer(r"Basic\s+([A-Za-z0-9+/=]{8,})", text):
        text += "\n" + base64.b64decode(m.group(1) + "==").decode("latin-1")
    return [c for c in CANARIES if c in text]


def error_text(exc: BaseException) -> str:
    """str, repr and the formatted traceback of ``exc`` and of its whole cause chain."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [str(exc), repr(exc), repr(getattr(exc, "args", ()))]
        parts += [repr(vars(exc))] if hasattr(exc, "__dict__") else []
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def files_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(root.rglob("*")) if p.is_file()
    )


@pytest.fixture(scope="module")
def server():
    """A moto server of this module's own with a small demo dataset (one truncated frame)."""
    with LocalS3(process=True) as s3:
        demo = write_demo_dataset(
            "s3://helio-secure/", s3.storage_options, frames=FRAMES, size=32, corrupt=1
        )
        yield s3, demo


class Records(logging.Handler):
    """Keeps every record it is given (``.records``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def debug_logs():
    """Every record of the four loggers at DEBUG (a handler on each: distributed's loggers
    do not propagate to the root)."""
    handler = Records()
    levels = {}
    for name in LOGGERS:
        log = logging.getLogger(name)
        levels[name] = log.level
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
    yield handler
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(levels[name])


def canary_options(s3) -> dict:
    return {
        "endpoint_url": s3.endpoint_url,
        "key": CANARY_KEY,
        "secret": CANARY_SECRET,
        "token": CANARY_TOKEN,
    }


def all_logs(handler: Records) -> str:
    """Every record as a handler would format it (message, arguments and traceback)."""
    fmt = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(fmt.format(r) + f" {r.args!r}" for r in handler.records)


# ----------------------------------------------------------------------------- the job
@pytest.mark.slow
def test_job_on_a_local_cluster_leaks_no_credential(
    server, debug_logs, capfd, tmp_path, monkeypatch
):
    s3, demo = server
    so = canary_options(s3)
    # the workers log at DEBUG too (their environment is read when distributed is imported)
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "debug")
    monkeypatch.setattr(progress_mod, "interactive", lambda: True)  # show the bar
    out = tmp_path / "out"
    with ih.cluster("local", workers=1, worker_cores=2) as client:
        result, summary = run_irradiance_job(
            demo.root,
            demo.dataset_id,
            demo.start,
            demo.stop,
            str(out),
            storage_options=so,
            cluster_kind=None,
            part_size=3,
            progress=True,
        )
        # a failing task on a worker: its "Compute Failed" log shows the task, not the args
        files = ih.open_bucket(demo.root, so)[demo.dataset_id].files(demo.start, demo.stop)
        with pytest.raises(ih.FrameReadError) as failed:
            ih.open_frames(files, storage_options=so).mean(("y", "x")).compute()
        worker_logs = client.get_worker_logs(n=100_000)
        scheduler_logs = client.get_scheduler_logs(n=100_000)
    captured = capfd.readouterr()
    assert "Compute Failed" in repr(worker_logs)  # control: the failure was logged
    assert leaks(error_text(failed.value), "".join(traceback.format_exception(failed.value))) == []

    # the run really used the canaries, and really logged and printed
    assert summary.ok == FRAMES - 1 and summary.failed == {"truncated": 1}
    assert "irradiance" in captured.err and "frame" in captured.err  # the progress bar
    # every library logged (how many records depends on what this process did before)
    assert {r.name.split(".")[0] for r in debug_logs.records} >= {"intake_helio", "distributed"}
    assert any(r.levelno == logging.DEBUG and r.name.startswith("s3fs") for r in debug_logs.records)
    assert any(level == "DEBUG" for logs in worker_logs.values() for level, _ in logs)

    assert leaks(all_logs(debug_logs), captured.out, captured.err) == []
    assert leaks(worker_logs, scheduler_logs) == []
    assert leaks(result, result.attrs, summary.text(), summary) == []
    saved = files_text(out)
    assert {p.name for p in out.rglob("*")} >= {
        "irradiance.csv",
        "irradiance.nc",
        "irradiance.png",
    }
    assert (out / "parts.zarr" / "_resume" / ".zattrs").is_file()  # the run's identity
    assert leaks(saved) == []
    with xr.open_dataset(out / "irradiance.nc") as nc:
        assert leaks(nc.attrs, [nc[v].attrs for v in nc.variables]) == []
    # no pickle among the saved files (netCDF-4/HDF5, CSV, JSON, PNG and the Zarr store's
    # JSON metadata and array chunks, text as UTF-8 strings)
    for path in out.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:8]
            assert head[:1] != b"\x80" and path.suffix not in (".pkl", ".pickle"), path
            if "parts.zarr" in path.parts:
                if path.name.startswith(".z"):
                    assert "pickle" not in path.read_text().lower(), path
                continue
            assert path.suffix in (".csv", ".nc", ".json", ".png"), path


def test_reprs_graphs_and_errors_of_the_library_leak_no_credential(server, debug_logs, capfd):
    s3, demo = server
    so = canary_options(s3)
    registry = ih.open_registry(demo.registry_url, so)
    bucket = registry.open_bucket(demo.root)
    dataset = bucket[demo.dataset_id]
    frames = dataset.to_dataarray(demo.start, demo.stop, on_error="nan", header_keys=["EXPTIME"])
    with dask.config.set(scheduler="threads"):
        result = ih.irradiance(frames, progress=False)
    options = StorageOptions(so)
    graph = dict(frames.data.__dask_graph__())
    # control: the credentials are inside the graph (the workers need them) ...
    in_tasks = [
        arg
        for key, task in graph.items()
        if isinstance(key, tuple) and key[0].startswith("helio-read-")
        for arg in task.args  # a dask Task (made by the read layer when asked)
        if isinstance(arg, ReadPlan) and isinstance(arg.storage_options, StorageOptions)
    ]
    in_tasks = [plan.storage_options for plan in in_tasks]  # each read task's plan carries them
    assert len(in_tasks) == FRAMES and in_tasks[0]["secret"] == CANARY_SECRET
    # ... but nothing shows them
    shown = [registry, bucket, dataset, frames, frames.attrs, result, options, graph]
    assert leaks(*shown, frames.to_dataset()) == []
    assert leaks(all_logs(debug_logs), *capfd.readouterr()) == []

    with pytest.raises(ih.DatasetNotFoundError) as missing:
        bucket["aia_0094x"]
    with pytest.raises(ih.FrameReadError) as unreadable:
        ih.open_frames(dataset.files(demo.start, demo.stop).iloc[[FRAMES // 2]], storage_options=so)
    assert "truncated" in str(unreadable.value)
    for info in (missing, unreadable):
        assert leaks(error_text(info.value), "".join(traceback.format_exception(info.value))) == []


def test_credentials_from_the_environment_leak_nowhere(
    server, debug_logs, capfd, tmp_path, monkeypatch
):
    s3, demo = server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY_TOKEN)
    so = {"endpoint_url": s3.endpoint_url}  # no credentials here: botocore finds them
    with dask.config.set(scheduler="threads"):
        result, summary = run_irradiance_job(
            demo.root,
            demo.dataset_id,
            demo.start,
            demo.stop,
            str(tmp_path),
            storage_options=so,
            cluster_kind=None,
            part_size=3,
            progress=False,
            plot=False,
        )
    assert summary.ok == FRAMES - 1
    assert leaks(all_logs(debug_logs), *capfd.readouterr()) == []
    assert leaks(result, files_text(tmp_path)) == []


# ----------------------------------------------------------------------------- bad credentials
@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"])
def test_errors_for_refused_credentials_leak_nothing_and_name_the_url(server, debug_logs, code):
    s3, demo = server
    rule = FaultRule("status", status=403, code=code, methods=("GET", "HEAD"))
    with FaultProxy(s3.endpoint_url, [rule]) as proxy:
        so = {**canary_options(s3), "endpoint_url": proxy.endpoint_url}
        with pytest.raises(PermissionError) as bucket_error:
            ih.open_bucket(demo.root, so)
        key = demo.datakeys[0]
        with pytest.raises(ih.FrameReadError) as frame_error:
            ih.open_frames(
                ih.open_bucket(demo.root, canary_options(s3))[demo.dataset_id].files(
                    demo.start, demo.stop
                ),
                storage_options=so,
            )
        stats = proxy.stats
    assert f"{demo.root}catalog.json" in str(bucket_error.value)
    assert frame_error.value.reason == "permission denied" and key in str(frame_error.value)
    assert stats["unsigned"] == 0  # no anonymous retry
    for exc in (bucket_error.value, frame_error.value):
        assert leaks(error_text(exc), "".join(traceback.format_exception(exc))) == []
    assert leaks(all_logs(debug_logs)) == []


def test_missing_bucket_error_leaks_nothing(server, debug_logs):
    s3, _ = server
    with pytest.raises(ih.CatalogNotFoundError) as info:
        ih.open_bucket("s3://no-such-bucket-intake-helio/", canary_options(s3))
    assert "s3://no-such-bucket-intake-helio/catalog.json" in str(info.value)
    text = error_text(info.value) + "".join(traceback.format_exception(info.value))
    assert leaks(text, all_logs(debug_logs)) == []


def test_fault_proxy_log_hides_presigned_credentials(server, debug_logs):
    """A request line the proxy logs (here a malformed one) shows no presigned credential."""
    import socket
    from urllib.parse import urlsplit

    s3, demo = server
    with FaultProxy(s3.endpoint_url) as proxy:
        so = {**canary_options(s3), "endpoint_url": proxy.endpoint_url}
        fs, path = filesystem(demo.catalog_url, so)
        url = urlsplit(fs.url(path, expires=60))
        assert CANARY_KEY in url.query and CANARY_TOKEN in url.query  # control: presigned
        line = f"GET {url.path}?{url.query} HTTP/1.1 extra-word\r\n\r\n".encode()
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            sock.sendall(line)
            assert b"Error code: 400" in sock.recv(4096)
    logged = [
        r.getMessage() for r in debug_logs.records if r.name == "intake_helio.testing.fault_proxy"
    ]
    # control: the request line, query included, was logged
    assert any("catalog.json?" in m and "=***" in m for m in logged), logged
    assert leaks(all_logs(debug_logs)) == []


# ----------------------------------------------------------------------------- intake
def test_intake_yaml_repr_and_describe_show_no_credential(server):
    s3, demo = server
    from intake_helio.intake import HelioBucketCatalog, HelioFramesSource

    so = canary_options(s3)
    cat = HelioBucketCatalog(demo.root, storage_options=so)
    entry_source = cat[demo.dataset_id](start=demo.start, stop=demo.stop, on_error="nan")
    direct = HelioFramesSource(
        demo.root, demo.dataset_id, demo.start, demo.stop, storage_options=so
    )
    frames = entry_source.to_dask()
    outputs = [
        cat,
        cat.yaml(),
        cat.serialize(),
        cat.describe(),
        entry_source,
        entry_source.yaml(),
        entry_source.describe(),
        direct,
        direct.yaml(),
        direct.describe(),
        direct.discover(),
        frames,
    ]
    assert leaks(*outputs) == []
    # control: the dumps do carry the (redacted) storage options
    assert "endpoint_url" in direct.yaml() and "***" in direct.yaml()
    assert frames.sizes["time"] == FRAMES


# ----------------------------------------------------------------------------- gateway
@pytest.fixture(scope="module")
def gateway():
    pytest.importorskip("sqlalchemy", reason="dask-gateway-server's local backend needs it")
    from intake_helio.testing.gateway_server import LocalGateway

    with LocalGateway(password=CANARY_PASSWORD) as gw:
        yield gw


def refused_errors(gw) -> list[PermissionError]:
    """The errors of cluster("gateway") with a wrong password and with an unknown API token."""
    from dask_gateway import BasicAuth, JupyterHubAuth

    where = {"address": gw.address, "proxy_address": gw.proxy_address}
    errors = []
    for auth in (BasicAuth("someone", CANARY_API_TOKEN), JupyterHubAuth(CANARY_API_TOKEN)):
        with (
            pytest.raises(PermissionError) as info,
            ih.cluster("gateway", workers=1, auth=auth, timeout=60, **where),
        ):
            pass
        errors.append(info.value)
    return errors


@pytest.mark.slow
@pytest.mark.gateway
def test_gateway_password_api_token_and_worker_environment_leak_nowhere(
    server, gateway, debug_logs, capfd
):
    from intake_helio.compute.clusters import describe_cluster

    s3, demo = server
    so = canary_options(s3)
    env = {"AWS_SECRET_ACCESS_KEY": CANARY_ENV_SECRET}
    where = {"address": gateway.address, "proxy_address": gateway.proxy_address}
    refused = refused_errors(gateway)
    with ih.cluster(
        "gateway", workers=1, worker_cores=1, auth=gateway.auth, environment=env, **where
    ) as client:
        frames = ih.open_bucket(demo.root, so)[demo.dataset_id].to_dataarray(
            demo.start, demo.stop, on_error="nan"
        )
        result = ih.irradiance(frames, progress=False)
        seen = client.run(lambda: __import__("os").environ.get("AWS_SECRET_ACCESS_KEY"))
        worker_logs = client.get_worker_logs(n=100_000)
        description = describe_cluster(
            "gateway", workers=1, auth=gateway.auth, environment=env, **where
        )
    server_log = gateway.log_path.read_text(errors="replace")
    assert set(seen.values()) == {CANARY_ENV_SECRET}  # control: the workers got it
    assert any(r.levelno == logging.DEBUG for r in debug_logs.records)  # logs were captured
    assert int((result["status"] == "ok").sum()) == FRAMES - 1
    for exc in refused:
        assert re.search(r"HTTP 40[13]", str(exc)), exc
        # what a user is shown: the message, the repr, the printed traceback
        assert leaks(str(exc), repr(exc), "".join(traceback.format_exception(exc))) == []
    assert leaks(all_logs(debug_logs), *capfd.readouterr()) == []
    assert leaks(worker_logs, result, description) == []
    assert "AWS_SECRET_ACCESS_KEY" in description
    assert len(server_log) > 100 and leaks(server_log) == []


@pytest.mark.gateway
def test_refused_gateway_error_does_not_keep_the_credentials_in_its_chain(gateway):
    for exc in refused_errors(gateway):
        assert leaks(error_text(exc)) == []


# ----------------------------------------------------------------------------- safe parsing
def test_catalog_yaml_is_loaded_safely(tmp_path):
    import intake
    import yaml

    marker = tmp_path / "executed"
    cat = tmp_path / "evil.yaml"
    apply = "!!python/object/apply:pathlib.Path"
    touch = f"{apply}.touch [{apply} ['{marker}']]"
    cat.write_text(f"sources:\n  x:\n    driver: helio_bucket\n    args: {touch}\n")
    with pytest.raises(yaml.YAMLError):
        list(intake.open_catalog(str(cat)))
    assert not marker.exists()


def test_cloudcatalog_json_is_parsed_as_json_only(tmp_path):
    root = tmp_path / "bucket"
    root.mkdir()
    # valid YAML, not JSON: a YAML loader would accept it
    (root / "catalog.json").write_text("version: '1.0'\ncatalog: []\n")
    with pytest.raises(ih.CatalogFormatError, match="not valid JSON"):
        ih.open_bucket(root.as_uri() + "/")
