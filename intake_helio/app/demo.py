"""The embedded demo: local S3 + synthetic AIA 94 data + the irradiance job, no cloud account.

Everything goes through the public code path used for real data: the registry JSON
-> the bucket's ``catalog.json`` -> yearly indexes -> lazy frames -> per-frame means.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import dask
import numpy as np

from ..catalog.registry import open_registry
from ..testing.demo_data import DemoDataset, write_demo_dataset
from ..testing.local_s3 import LocalS3
from .job import JobSummary, run_irradiance_job

__all__ = ["DemoReport", "run_demo", "serve_demo"]

DEMO_ROOT = "s3://helio-demo/"
DEMO_NAME = "Local demo (intake-helio)"


@dataclass
class DemoReport:
    """What the demo did and whether its values match the generator's truth."""

    data: DemoDataset
    summary: JobSummary
    max_rel_error: float
    failed_as_expected: bool

    @property
    def ok(self) -> bool:
        return self.failed_as_expected and self.max_rel_error < 1e-5


def run_demo(
    out: str = "demo-output",
    frames: int = 48,
    size: int = 256,
    cluster_kind: str | None = "local",
    cluster_kwargs: dict | None = None,
    progress: bool = True,
    log=print,
) -> DemoReport:
    """Start a local S3 endpoint, publish a synthetic dataset in it and run the job on it.

    With ``cluster_kind="gateway"`` and no gateway address (neither in ``cluster_kwargs``
    nor in dask config ``gateway.address``), a local dask-gateway server on 127.0.0.1 is
    started for the run and stopped afterwards.
    """
    with contextlib.ExitStack() as stack:
        cluster_kwargs = dict(cluster_kwargs or {})
        if cluster_kind == "gateway" and not (
            cluster_kwargs.get("address") or dask.config.get("gateway.address", None)
        ):
            from ..testing.gateway_server import LocalGateway

            gw = stack.enter_context(LocalGateway())
            log(f"local dask-gateway server on {gw.address} (no gateway.address configured)")
            cluster_kwargs.update(address=gw.address, proxy_address=gw.proxy_address, auth=gw.auth)
        return _run_demo(out, frames, size, cluster_kind, cluster_kwargs, progress, log)


def _run_demo(out, frames, size, cluster_kind, cluster_kwargs, progress, log) -> DemoReport:
    with LocalS3(process=True) as s3:
        log(f"local S3 endpoint (moto) on {s3.endpoint_url}")
        t0 = time.perf_counter()
        data = write_demo_dataset(
            DEMO_ROOT, s3.storage_options, frames=frames, size=size, registry_name=DEMO_NAME
        )
        log(
            f"wrote {len(data.datakeys)} synthetic AIA 94 frames of {size}x{size} "
            f"({data.start:%Y-%m-%d %H:%M} to {data.stop:%Y-%m-%d %H:%M}) in "
            f"{time.perf_counter() - t0:.1f} s, with catalog.json, yearly indexes and "
            f"registry {data.registry_url}"
        )
        registry = open_registry(data.registry_url, s3.storage_options)
        endpoint = registry.endpoint(DEMO_NAME)
        result, summary = run_irradiance_job(
            endpoint,
            data.dataset_id,
            data.start,
            data.stop,
            out,
            storage_options=s3.storage_options,
            cluster_kind=cluster_kind,
            cluster_kwargs=cluster_kwargs,
            progress=progress,
        )
    values = result["irradiance"].to_numpy()
    truth = np.asarray(data.expected_mean, dtype=np.float64)
    good = ~np.isnan(truth)
    rel = np.abs(values[good] - truth[good]) / np.abs(truth[good])
    max_rel = float(np.nanmax(rel)) if rel.size else 0.0
    if np.isnan(values[good]).any():
        max_rel = float("inf")
    failed = set(result["datakey"].to_numpy()[result["status"].to_numpy() != "ok"].astype(str))
    return DemoReport(data, summary, max_rel, failed == set(data.corrupt))


def serve_demo(frames: int = 48, size: int = 256, port: int = 0, log=print) -> None:
    """Keep a local S3 endpoint with the demo dataset running until Ctrl-C."""
    with LocalS3(process=True, port=port) as s3:
        data = write_demo_dataset(
            DEMO_ROOT, s3.storage_options, frames=frames, size=size, registry_name=DEMO_NAME
        )
        so = s3.storage_options
        log(
            f"Local S3 endpoint with the demo dataset: {s3.endpoint_url}\n"
            f"  bucket {DEMO_ROOT}  dataset {data.dataset_id}  "
            f"{data.start.isoformat()} .. {data.stop.isoformat()}\n\n"
            "From Python:\n"
            "  import intake_helio as ih\n"
            f"  so = {{'endpoint_url': '{so['endpoint_url']}', 'key': '{so['key']}', "
            "'secret': '<the demo secret>'}\n"
            f"  frames = ih.open_bucket('{DEMO_ROOT}', storage_options=so)['{data.dataset_id}']"
            ".to_dataarray()\n\n"
            "With intake (catalogs/demo.yaml reads the endpoint from the environment):\n"
            f"  export INTAKE_HELIO_DEMO_ENDPOINT_URL={s3.endpoint_url}\n"
            "  python -c \"import intake; cat = intake.open_catalog('catalogs/demo.yaml'); "
            'print(list(cat.demo))"\n\n'
            "Any key and secret work with this local server. Ctrl-C stops it."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            log("stopping the local S3 endpoint")
