"""The command line's values: storage options, cutouts, durations, formats, ``--science``.

Each turns one argument (or a group of them) into what the jobs take, or raises
:class:`BadInput` naming the argument, the value and what was expected.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..base.errors import HelioError
from ..frames.options import FramesError
from ..frames.options import parse_cutout as read_cutout

__all__ = [
    "BadInput",
    "cluster_kwargs",
    "datasets",
    "duration",
    "out_dir",
    "parse_cutout",
    "parse_formats",
    "positive",
    "resolve_endpoint",
    "science",
    "seconds",
    "storage_options",
]


class BadInput(HelioError, ValueError):
    """A command-line value that cannot be used."""


def storage_options(args) -> dict[str, Any]:
    so: dict[str, Any] = {}
    for item in args.storage_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--storage-option {item!r}: expected KEY=VALUE, e.g. anon=true")
        try:
            so[key] = json.loads(value)
        except json.JSONDecodeError:
            so[key] = value
    if args.anon:
        so["anon"] = True
    if args.endpoint_url:
        so["endpoint_url"] = args.endpoint_url
    from ..io.storage import check_option_names

    check_option_names(so)  # a misspelt name: exit 2 before the out dir, cluster or requests
    return so


def resolve_endpoint(endpoint: str, args, so) -> str:
    if "://" in endpoint:
        return endpoint
    from ..catalog.registry import open_registry

    return open_registry(args.registry, so).endpoint(endpoint, args.region)


def parse_cutout(text: str | None):
    """``--cutout Y0:Y1,X0:X1`` as the cutout dict the jobs take (read by the frames' one
    cutout reader, :func:`~intake_helio.frames.options.parse_cutout`)."""
    if not text:
        return None
    try:
        return read_cutout(text).plain()
    except FramesError:
        raise BadInput(
            f"--cutout {text!r}: expected Y0:Y1,X0:X1 such as 1000:1200,0:4096"
        ) from None


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def seconds(text: str) -> float:
    """argparse type: a number of seconds >= 0 (``inf``: without end)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def statistic(text: str) -> str:
    """argparse type of ``--stat``: a built-in statistic or a percentile ``p<q>``."""
    from ..frames.reader import BUILTINS, is_builtin

    if not is_builtin(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a statistic; expected one of {', '.join(BUILTINS)} or a "
            "percentile p<q> with 0 <= q <= 100 (e.g. p99, p99.9)"
        )
    return text


def out_dir(path: str) -> str:
    """``--out``: a directory (created if missing), not an existing file."""
    from pathlib import Path

    if Path(path).exists() and not Path(path).is_dir():
        raise BadInput(f"--out {path!r} is a file; expected a directory (created if missing)")
    return path


def cluster_kwargs(args) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if args.workers is not None:
        kw["workers"] = args.workers
    if args.worker_cores is not None:
        kw["worker_cores"] = args.worker_cores
    if args.worker_memory is not None:
        try:  # a plain number is GiB, as Daskhub's worker_memory option
            kw["worker_memory"] = float(args.worker_memory)
        except ValueError:
            kw["worker_memory"] = args.worker_memory
    if args.cluster == "gateway" and args.gateway_address:
        kw["address"] = args.gateway_address
    if getattr(args, "scheduler_address", None):
        if args.cluster == "gateway":
            raise BadInput("--scheduler-address and --cluster gateway: choose one")
        return {"scheduler_address": args.scheduler_address}
    return kw


def datasets(args) -> str | list[str]:
    """DATASET (several allowed) and ``--dataset`` (repeatable): one id, or a list of several."""
    ids = [*(args.dataset or []), *(args.datasets or [])]
    if not ids:
        raise BadInput(
            "no dataset given: name one after ENDPOINT (or with --dataset ID); several "
            "(e.g. aia_0094 aia_0171) are read as channels on the first one's time axis"
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise BadInput(f"dataset {', '.join(map(repr, repeated))} given twice; name each once")
    return ids[0] if len(ids) == 1 else ids


def duration(text: str) -> str:
    """argparse type: a duration such as 6s, 500ms or 1min."""
    import pandas as pd

    try:
        value = pd.Timedelta(text)
    except (TypeError, ValueError):
        value = None
    if value is None or pd.isna(value) or value < pd.Timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 6s or 1min")
    return text


def parse_formats(values: list[str] | None) -> tuple[str, ...]:
    """``--format csv,nc,zarr,png`` (repeatable) -> the formats, in that order."""
    from .job import FORMATS

    if not values:
        return ("csv", "nc")
    items = [f.strip().lower() for v in values for f in v.split(",") if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise BadInput(
            f"--format {','.join(values)!r}: expected a comma-separated list of "
            f"{', '.join(FORMATS)}, e.g. csv,nc,zarr"
        )
    return tuple(f for f in FORMATS if f in items)


def science(value: str):
    """``--science MODULE:FUNCTION`` -> the function, imported here (on the client).

    The current directory is searched first, then the Python path. The function reaches
    the workers by value (see :func:`intake_helio.compute.shipping.ship_by_value`).
    """
    import importlib
    import os

    expected = "expected MODULE:FUNCTION naming a function f(data, header), e.g. mylimb:brightness"
    module_name, sep, attr = value.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not sep or not module_name or not attr:
        raise BadInput(f"--science {value!r}: {expected}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise BadInput(
                f"--science {value!r}: no module named {missing!r} in the current directory "
                f"or on the Python path; {expected}"
            ) from None
        raise BadInput(
            f"--science {value!r}: importing {module_name!r} failed: {exc}; it needs module "
            f"{missing!r} installed"
        ) from None
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise BadInput(
            f"--science {value!r}: importing {module_name!r} failed: {type(exc).__name__}: {text}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BadInput(
                f"--science {value!r}: module {module_name!r} has no attribute {attr!r}; {expected}"
            ) from None
    if not callable(obj):
        raise BadInput(
            f"--science {value!r}: {module_name}.{attr} is {type(obj).__name__} "
            f"{repr(obj)[:40]}, not callable; {expected}"
        )
    return obj
