"""The optional packages of the ``demo`` extra, found when a server starts and not before.

``pip install "intake-helio[demo]"`` brings ``moto[server]`` (for
:class:`~intake_helio.testing.local_s3.LocalS3`) and ``dask-gateway-server`` (for
:class:`~intake_helio.testing.gateway_server.LocalGateway`). They are imported only when a
server is started, and :func:`require_extra` turns their absence into a one-line
:class:`MissingExtraError` that says what to install.
"""

from __future__ import annotations

import importlib.util

from ..base.errors import HelioError

__all__ = ["INSTALL_DEMO", "MissingExtraError", "missing_extra", "require_extra"]

INSTALL_DEMO = 'pip install "intake-helio[demo]"'
"""The command that installs every package of the ``demo`` extra."""


class MissingExtraError(HelioError, ImportError):
    """A package of the ``demo`` extra is not installed.

    The message is one line, e.g. ``LocalS3 needs moto[server]: pip install
    "intake-helio[demo]"``; ``name`` is the missing module.
    """


def missing_extra(who: str, requirement: str, module: str) -> MissingExtraError:
    """The error for ``who`` (e.g. ``"LocalS3"``) lacking ``requirement`` (``"moto[server]"``)."""
    return MissingExtraError(f"{who} needs {requirement}: {INSTALL_DEMO}", name=module)


def require_extra(who: str, requirement: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` unless every one of ``modules`` can be imported.

    Only looks the modules up (``importlib.util.find_spec``); a top-level module is not
    imported, a submodule imports its parent package.

    Parameters
    ----------
    who : str
        What needs them, e.g. ``"LocalS3"``.
    requirement : str
        The pip requirement that provides them, e.g. ``"moto[server]"``.
    *modules : str
        Importable names, e.g. ``"moto"``, ``"flask"``.

    Raises
    ------
    MissingExtraError
        ``"<who> needs <requirement>: pip install "intake-helio[demo]""``.
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent is missing, or blocked in sys.modules
            found = False
        if not found:
            raise missing_extra(who, requirement, module)
