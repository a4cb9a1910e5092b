"""Test, benchmark and demo infrastructure; the core of intake-helio never imports it.

Needs the ``demo`` extra, ``pip install "intake-helio[demo]"``, which brings
``moto[server]`` (a local S3 endpoint) and ``dask-gateway-server`` (a local dask-gateway).
Those are imported only when a server is started; without them starting one raises
:class:`~intake_helio.testing.extras.MissingExtraError` saying what to install.

Modules
-------
``aia``
    Synthetic SDO/AIA 94 Å frames (:func:`make_aia_frame`, :func:`flare_profile`,
    :func:`frame_bytes`).
``cdf_files``
    CDF files written with cdflib (:func:`~.cdf_files.magnetometer_cdf`, hostile
    variants); import the module, ``from intake_helio.testing.cdf_files import ...``.
``demo_data``
    A synthetic dataset published as a CloudCatalog (:func:`write_demo_dataset`).
``demo_series``
    The demo's synthetic magnetometer, CDF files in the same bucket, with its truth
    (:func:`~.demo_series.write_demo_series`); import the module.
``local_s3``
    :class:`LocalS3`, moto's S3 server on 127.0.0.1.
``gateway_server``
    :class:`LocalGateway`, a dask-gateway server on 127.0.0.1.
``fault_rules``, ``fault_proxy``
    :class:`FaultRule` and :class:`FaultProxy`, an HTTP proxy that injects S3 faults.
``errors``, ``extras``
    The exceptions raised here.

Nothing is imported with this package: the names below are loaded from their modules on
first use, e.g. ``from intake_helio.testing import LocalS3``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it (imported on first access).
_EXPORTS = {
    "BLANK": "aia",
    "flare_profile": "aia",
    "frame_bytes": "aia",
    "make_aia_frame": "aia",
    "DemoDataset": "demo_data",
    "write_demo_dataset": "demo_data",
    "LocalS3": "local_s3",
    "LocalGateway": "gateway_server",
    "FAULT_KINDS": "fault_rules",
    "FaultRule": "fault_rules",
    "FaultProxy": "fault_proxy",
    "Shaping": "shaping",
    "ProxyProcess": "proxy_process",
    "DemoDataError": "errors",
    "DemoStoreError": "errors",
    "FaultConfigError": "errors",
    "FaultConfigTypeError": "errors",
    "LocalServerError": "errors",
    "MissingExtraError": "extras",
}

__all__ = [
    "BLANK",
    "FAULT_KINDS",
    "DemoDataError",
    "DemoDataset",
    "DemoStoreError",
    "FaultConfigError",
    "FaultConfigTypeError",
    "FaultProxy",
    "FaultRule",
    "LocalGateway",
    "LocalS3",
    "LocalServerError",
    "MissingExtraError",
    "ProxyProcess",
    "Shaping",
    "flare_profile",
    "frame_bytes",
    "make_aia_frame",
    "write_demo_dataset",
]

if TYPE_CHECKING:  # pragma: no cover
    from .aia import BLANK, flare_profile, frame_bytes, make_aia_frame
    from .demo_data import DemoDataset, write_demo_dataset
    from .errors import (
        DemoDataError,
        DemoStoreError,
        FaultConfigError,
        FaultConfigTypeError,
        LocalServerError,
    )
    from .extras import MissingExtraError
    from .fault_proxy import FaultProxy
    from .fault_rules import FAULT_KINDS, FaultRule
    from .gateway_server import LocalGateway
    from .local_s3 import LocalS3


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'intake_helio.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
