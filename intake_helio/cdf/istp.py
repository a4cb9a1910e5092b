"""Which epoch goes along ``time`` and which variables come with it (ISTP ``DEPEND_0``).

:func:`cdflib.xarray.cdf_to_xarray` names the record dimension of each variable after its
``DEPEND_0`` epoch (``Epoch``, ``Epoch_state``, ...), that epoch being a coordinate of
``datetime64[ns]`` along itself. :func:`choose` picks one of those epochs, :func:`select`
keeps the asked variables on it (with the coordinates they need) and renames the epoch to
``time``. Pure functions of a Dataset: the backend calls them on the Dataset of the whole
file (``open``) and on that of its first two records (``scan``), so both agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..base.backends import TIME, Layout
from ..base.errors import ArgumentError

__all__ = ["NoEpochError", "Selection", "choose", "epochs_of", "layout_of", "select"]

#: Dataset attributes set by :func:`select`.
TIME_ATTR = "intake_helio_time"
OTHER_TIMES_ATTR = "intake_helio_other_times"


class NoEpochError(Exception):
    """The file has no usable ``DEPEND_0`` epoch (or not the one asked); the detail says."""


@dataclass(frozen=True)
class Selection:
    """The chosen epoch, the data variables kept and the other epochs' variables."""

    time: str
    variables: tuple[str, ...]
    other_times: str


def epochs_of(ds: xr.Dataset, order: Sequence[str]) -> dict[str, list[str]]:
    """Each record-varying epoch of ``ds`` (in the file's ``order``) and its data variables.

    An epoch is a 1-D ``datetime64`` coordinate along its own dimension that is the
    first dimension of at least one data variable.
    """
    epochs = {
        name: []
        for name in order
        if name in ds.coords
        and ds[name].dims == (name,)
        and np.issubdtype(ds[name].dtype, np.datetime64)
    }
    for name in order:
        var = ds.data_vars.get(name)
        if var is not None and var.dims and var.dims[0] in epochs:
            epochs[var.dims[0]].append(name)
    return {name: names for name, names in epochs.items() if names}


def choose(
    ds: xr.Dataset, order: Sequence[str], variables: Sequence[str] | None, time: str | None
) -> Selection:
    """The epoch along ``time`` and the data variables kept on it.

    Parameters
    ----------
    ds : xarray.Dataset
        What :func:`cdflib.xarray.cdf_to_xarray` gives for the file.
    order : sequence of str
        The file's variable names in the file's order (rVariables, then zVariables).
    variables : sequence of str or None
        The data variables asked (None: every data variable).
    time : str or None
        The epoch asked (None: the one most of the asked variables are on; ties: the
        first in the file).

    Returns
    -------
    Selection

    Raises
    ------
    ArgumentError
        A name of ``variables`` is not a variable of the file.
    NoEpochError
        The file has no ``DEPEND_0`` epoch, or ``time`` is not one of its epochs.
    """
    if variables is not None:
        variables = list(dict.fromkeys(variables))
        unknown = [v for v in variables if v not in ds.data_vars]
        if unknown:
            raise ArgumentError(
                f"variables {', '.join(unknown)} are not data variables of the file; it has "
                f"{', '.join(ds.data_vars) or 'none'}"
            )
    epochs = epochs_of(ds, order)
    if not epochs:
        raise NoEpochError(
            "no variable has a record-varying DEPEND_0 epoch (TT2000, EPOCH or EPOCH16); "
            f"its variables: {', '.join(order) or 'none'}"
        )
    asked = list(ds.data_vars) if variables is None else variables
    if time is None:
        counts = {e: sum(v in names for v in asked) for e, names in epochs.items()}
        time = max(counts, key=counts.__getitem__)  # max keeps the first of equal counts
    elif time not in epochs:
        raise NoEpochError(
            f"time={time!r} is not a DEPEND_0 epoch of the file; its epochs: "
            f"{', '.join(epochs)}; pass one of them as time="
        )
    kept = tuple(
        v for v in asked if v in epochs[time] or (variables is not None and not ds[v].dims)
    )
    others = "; ".join(f"{e}: {', '.join(names)}" for e, names in epochs.items() if e != time)
    return Selection(time, kept, others)


def select(ds: xr.Dataset, selection: Selection) -> xr.Dataset:
    """``ds`` restricted to the selection's variables, its epoch renamed to ``time``."""
    out = ds[list(selection.variables)]
    drop = [c for c in out.coords if c != selection.time and c == TIME]
    out = out.drop_vars(drop).rename({selection.time: TIME})
    out.attrs = {
        **ds.attrs,
        TIME_ATTR: selection.time,
        OTHER_TIMES_ATTR: selection.other_times,
    }
    return out


def layout_of(ds: xr.Dataset) -> Layout:
    """The :data:`~intake_helio.base.backends.Layout` of a series Dataset.

    Every data variable and coordinate except ``time``: its dtype string, its dims and
    the sizes of its dims other than ``time``.
    """
    return {
        name: (
            str(var.dtype),
            tuple(str(d) for d in var.dims),
            tuple(int(n) for d, n in zip(var.dims, var.shape, strict=True) if d != TIME),
        )
        for name, var in ds.variables.items()
        if name != TIME
    }
