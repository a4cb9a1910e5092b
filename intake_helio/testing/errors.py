"""Exceptions raised by the test and demo infrastructure of :mod:`intake_helio.testing`.

Like every intake-helio error, each subclasses :class:`~intake_helio.base.errors.HelioError`
and the matching built-in, so ``except ValueError`` (or ``OSError``, ...) keeps working.
A missing optional package raises :class:`~intake_helio.testing.extras.MissingExtraError`.
"""

from __future__ import annotations

from ..base.errors import HelioError

__all__ = [
    "DemoDataError",
    "DemoStoreError",
    "FaultConfigError",
    "FaultConfigTypeError",
    "LocalServerError",
]


class DemoDataError(HelioError, ValueError):
    """An argument of the synthetic data or of publishing it is out of range."""


class DemoStoreError(HelioError, OSError):
    """The store that demo data are published to cannot be created or opened."""


class FaultConfigError(HelioError, ValueError):
    """A :class:`~intake_helio.testing.fault_rules.FaultRule` or ``FaultProxy`` value is invalid."""


class FaultConfigTypeError(HelioError, TypeError):
    """A ``FaultRule`` or ``FaultProxy`` argument has the wrong type."""


class LocalServerError(HelioError, RuntimeError):
    """A local server (S3, dask-gateway) did not start, or is used while not running."""
