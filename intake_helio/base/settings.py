"""intake-helio's tunables in ``dask.config`` (defaults in ``settings.yaml``).

Settings are read on the client when an array or a job is built (:func:`current`) and
travel with the tasks as a :class:`Settings` record, so workers never depend on their own
configuration. Set them the dask way::

    with dask.config.set({"intake_helio.part-size": 512}):
        result = ih.irradiance(frames)
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass
from typing import Any

import dask.config
import dask.utils
import pandas as pd
import yaml

from .errors import HelioError

__all__ = ["CatalogSettings", "Settings", "SettingsError", "catalog_settings", "current"]

_DEFAULTS = pathlib.Path(__file__).with_name("settings.yaml")
dask.config.update_defaults(yaml.safe_load(_DEFAULTS.read_text()))


class SettingsError(HelioError, ValueError):
    """An ``intake_helio.*`` setting in ``dask.config`` has an unusable value."""


@dataclass(frozen=True)
class Settings:
    """A snapshot of the ``intake_helio.*`` settings (picklable; travels with tasks).

    Make one with :func:`current` (change one field with ``dataclasses.replace``): the
    defaults live in ``settings.yaml`` only, so the fields have none.
    """

    retry_attempts: int
    retry_base_delay: float
    header_read_size: int
    max_gap: int
    band_pixels: int
    batch_size: int
    part_size: int
    max_probes: int
    default_window: pd.Timedelta
    # frame-side limits
    max_file_bytes: int
    filesize_slack: int
    max_frame_pixels: int
    max_hdus: int
    max_header_bytes: int
    shape_probes: int
    # time-series side (CDF, netCDF, HDF5): most bytes the variables of one file decode to
    max_series_bytes: int
    series_scan_concurrency: int
    # reads: frames fetched ahead per task, bytes per concurrent ranged request of a file
    read_ahead: int
    read_ahead_bytes: int
    batch_bytes: int
    ranged_concurrency: int
    read_part_bytes: int
    split_below_mbps: float
    # catalog side: size limits, request timeouts, every request's deadline, the URL policy
    catalog: CatalogSettings


def _get(key: str) -> Any:
    return dask.config.get(f"intake_helio.{key}")


def _positive_int(key: str, minimum: int = 1) -> int:
    value = _get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected an integer >= {minimum} "
            f"(set it with dask.config.set({{'intake_helio.{key}': ...}}))"
        )
    return value


def _non_negative(key: str) -> float:
    value = _get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected a number of seconds >= 0"
        )
    return float(value)


def _window(key: str) -> pd.Timedelta:
    value = _get(key)
    try:
        window = pd.Timedelta(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected a duration such as '1 day'"
        ) from exc
    if window <= pd.Timedelta(0):
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected a positive duration"
        )
    return window


def current() -> Settings:
    """The settings in force now (``dask.config``), checked.

    Returns
    -------
    Settings

    Raises
    ------
    SettingsError
        When a value has the wrong type or range; the message names the key.
    """
    return Settings(
        retry_attempts=_positive_int("retry.attempts"),
        retry_base_delay=_non_negative("retry.base-delay"),
        header_read_size=_positive_int("header-read-size", 2880),
        max_gap=_positive_int("max-gap", 0),
        band_pixels=_positive_int("band-pixels"),
        batch_size=_positive_int("batch-size"),
        part_size=_positive_int("part-size"),
        max_probes=_positive_int("max-probes"),
        default_window=_window("default-window"),
        max_file_bytes=_positive_int("max-file-bytes", 2880),
        filesize_slack=_positive_int("filesize-slack", 0),
        max_frame_pixels=_positive_int("max-frame-pixels"),
        max_hdus=_positive_int("max-hdus"),
        max_header_bytes=_positive_int("max-header-bytes", 2880),
        shape_probes=_positive_int("shape-probes"),
        max_series_bytes=_bytes("max-series-bytes"),
        series_scan_concurrency=_positive_int("series-scan-concurrency"),
        read_ahead=_positive_int("read-ahead", 0),
        read_ahead_bytes=_positive_int("read-ahead-bytes", 0),
        batch_bytes=_positive_int("batch-bytes", 0),
        ranged_concurrency=_positive_int("ranged-concurrency"),
        read_part_bytes=_positive_int("read-part-bytes", 0),
        split_below_mbps=_non_negative("split-below-mbps"),
        catalog=catalog_settings(),
    )


# --------------------------------------------------------------------------- catalog side
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*\Z")
_ORIGIN = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/?#@\s]+)/?\Z")


def _bytes(key: str, minimum: int = 1) -> int:
    value = _get(key)
    try:
        n = value if isinstance(value, int) else dask.utils.parse_bytes(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected a number of bytes such as "
            f"67108864 or '64 MiB'"
        ) from exc
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected a number of bytes >= {minimum}"
        )
    return n


def _seconds(key: str) -> float:
    value = _get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise SettingsError(
            f"dask config intake_helio.{key}={value!r}; expected a number of seconds > 0"
        )
    return float(value)


def _names(key: str, pattern: re.Pattern, example: str) -> tuple[str, ...]:
    value = _get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value if isinstance(value, list | tuple) else [value]:
        text = item.strip().lower() if isinstance(item, str) else None
        if not text or not pattern.match(text):
            raise SettingsError(
                f"dask config intake_helio.{key} holds {item!r}; expected a list of "
                f"values such as {example}"
            )
        out.append(text.rstrip("/"))
    return tuple(out)


@dataclass(frozen=True)
class CatalogSettings:
    """The catalog-side part of :class:`Settings` (its ``catalog``): limits, timeouts and
    the URL policy.

    ``min_rate`` (bytes/s) and ``allowance`` (s) give every request its deadline
    (:class:`~intake_helio.io.deadline.Deadline`): ``allowance + bytes / min_rate`` seconds.

    Read by :func:`catalog_settings` (cheaper than :func:`current`, for per-request use).
    """

    max_json_bytes: int
    max_index_bytes: int
    max_index_expanded_bytes: int
    connect_timeout: float
    read_timeout: float
    request_attempts: int
    allowed_schemes: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    max_connections: int
    max_redirects: int
    min_rate: int  # bytes/s
    allowance: float  # seconds


def catalog_settings() -> CatalogSettings:
    """The catalog-side settings in force now (``intake_helio.limits.*``, ``timeouts.*``,
    ``url-policy.*``), checked.

    Returns
    -------
    CatalogSettings

    Raises
    ------
    SettingsError
        When a value has the wrong type or range; the message names the key.
    """
    return CatalogSettings(
        max_json_bytes=_bytes("limits.json-bytes", 2),
        max_index_bytes=_bytes("limits.index-bytes", 1),
        max_index_expanded_bytes=_bytes("limits.index-expanded-bytes", 1),
        connect_timeout=_seconds("timeouts.connect"),
        read_timeout=_seconds("timeouts.read"),
        request_attempts=_positive_int("timeouts.attempts"),
        max_connections=_positive_int("timeouts.max-connections"),
        max_redirects=_positive_int("url-policy.max-redirects", minimum=0),
        min_rate=_bytes("timeouts.min-rate", 1),
        allowance=_seconds("timeouts.allowance"),
        allowed_schemes=_names("url-policy.allowed-schemes", _SCHEME, "['s3', 'https']"),
        allowed_hosts=_names(
            "url-policy.allowed-hosts", _ORIGIN, "['http://127.0.0.1:8000'] (scheme://host:port)"
        ),
    )
