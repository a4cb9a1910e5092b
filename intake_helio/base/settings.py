"""intake-helio's tunables in ``dask.config`` (defaults in ``settings.yaml``).

Settings are read on the client when an array or a job is built (:func:`current`) and
travel with the tasks as a :class:`Settings` record, so workers never depend on their own
configuration. Set them the dask way::

    with dask.config.set({"intake_helio.part-size": 512}):
        result = ih.irradiance(frames)
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import dask.config
import pandas as pd
import yaml

from .errors import HelioError

__all__ = ["Settings", "SettingsError", "current"]

_DEFAULTS = pathlib.Path(__file__).with_name("settings.yaml")
dask.config.update_defaults(yaml.safe_load(_DEFAULTS.read_text()))


class SettingsError(HelioError, ValueError):
    """An ``intake_helio.*`` setting in ``dask.config`` has an unusable value."""


@dataclass(frozen=True)
class Settings:
    """A snapshot of the ``intake_helio.*`` settings (picklable; travels with tasks).

    Make one with :func:`current`; tests may build one directly.
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
    )
