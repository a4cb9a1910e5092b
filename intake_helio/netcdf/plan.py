"""Which variables of a netCDF file go into its series Dataset, along which time.

Decided on the lazy Dataset (:func:`~intake_helio.netcdf.engines.open_lazy`: names, dims,
decoded dtypes), before any data is read.

The time (``time=None``): the variable named ``time`` when it decodes to ``datetime64``;
else the 1-D coordinates that decode to ``datetime64``; of several, the one whose dimension
most of the asked variables (all data variables when ``variables=None``) are along, then a
dimension coordinate (named as its dimension), then the first in the file. ``time="name"``
picks one (a 1-D variable that decodes to ``datetime64``, coordinate or not).

The rule for the other variables, with *record dimension* the chosen time's dimension and
*other time dimensions* the dimensions of the file's other 1-D ``datetime64`` coordinates
(and a dimension named ``time`` that is not the record dimension):

* data: ``variables=None``, every data variable along the record dimension; else the asked
  ones (coordinates may be asked too). A variable along the record dimension and another
  time dimension is along another time;
* along another time dimension (asked or not): dropped, and listed per time in
  ``attrs["intake_helio_other_times"]`` (``"obs_time: a, b; hk_time: c"``);
* coordinates whose dimensions all label the kept data (``lat(time)``, ``channel``): kept;
* support data without any time dimension (no record dimension, no other time): kept, as
  coordinates, when asked or when its dimensions all label the kept data (with
  ``variables=None``); it is the same in every file of a series;
* a variable named ``time`` that is not the chosen time is dropped (``time`` is the
  record's name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..base.backends import TIME
from ..base.errors import ArgumentError, FileReadError
from ..base.reasons import Reason
from ..base.text import safe_text

__all__ = ["Plan", "check_bytes", "check_times", "plan_of"]


@dataclass(frozen=True)
class Plan:
    """What of one file goes into its Dataset.

    Attributes
    ----------
    time : str
        The chosen time variable's name in the file.
    dim : str
        Its dimension (the record dimension, renamed ``time``).
    data : tuple of str
        The data variables along the record dimension.
    coords : tuple of str
        The coordinates and support data kept (as coordinates), the time excluded.
    other_times : dict of str to list of str
        Per other time, the variables dropped for being along it.
    """

    time: str
    dim: str
    data: tuple[str, ...]
    coords: tuple[str, ...]
    other_times: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Every variable read from the file: the time first."""
        return (self.time, *self.coords, *self.data)

    def other_times_text(self) -> str:
        """``attrs["intake_helio_other_times"]``: ``"t2: a, b; t3: c"`` ('' when none)."""
        return "; ".join(f"{t}: {', '.join(v)}" for t, v in self.other_times.items())


def _names(values: Sequence[str]) -> str:
    return ", ".join(safe_text(v, 60) for v in list(values)[:20]) or "none"


def _is_datetime(var: xr.Variable) -> bool:
    return var.ndim == 1 and np.issubdtype(var.dtype, np.datetime64)


def _no_time(ds: xr.Dataset, datakey: str, why: str) -> FileReadError:
    """``NO_TIME``: ``why``, the file's datetime variables, and what to pass or fix."""
    stamps = [str(k) for k, v in ds.variables.items() if _is_datetime(v)]
    numeric = [
        str(k)
        for k, v in ds.variables.items()
        if v.ndim == 1 and np.issubdtype(v.dtype, np.number) and str(k) not in stamps
    ]
    return FileReadError(
        datakey,
        Reason.NO_TIME,
        f"{why}; 1-D variables that decode to datetime64: {_names(stamps)} (pass "
        f"time='<name>' to pick one); 1-D numeric variables: {_names(numeric)} (times "
        "stored as numbers without CF units such as 'seconds since 2020-01-01' are not "
        "decoded: give the time variable CF units, then pass time= if it is not found)",
    )


def _choose_time(
    ds: xr.Dataset, datakey: str, asked: Sequence[str] | None, time: str | None
) -> str:
    """The name of the time variable (see the module's rule)."""
    if time is not None:
        if time not in ds.variables:
            raise _no_time(ds, datakey, f"the file has no variable {safe_text(time, 60)!r}")
        var = ds.variables[time]
        if not _is_datetime(var):
            units = safe_text(var.attrs.get("units", var.encoding.get("units", "none")), 60)
            raise _no_time(
                ds,
                datakey,
                f"{safe_text(time, 60)!r} is {var.dtype} with dims {var.dims} and units "
                f"{units!r}, not a 1-D variable that decodes to datetime64",
            )
        return time
    if TIME in ds.variables and _is_datetime(ds.variables[TIME]):
        return TIME
    candidates = [str(k) for k, v in ds.coords.variables.items() if _is_datetime(v)]
    if not candidates:
        raise _no_time(ds, datakey, "no 1-D coordinate decodes to datetime64")
    wanted = list(ds.data_vars) if asked is None else list(asked)

    def score(name: str) -> tuple[int, int, int]:
        dim = ds.variables[name].dims[0]
        used = sum(dim in ds.variables[v].dims for v in wanted)
        return (-used, name != dim, candidates.index(name))

    return min(candidates, key=score)


def _check_asked(ds: xr.Dataset, variables: Sequence[str] | None) -> None:
    if variables is None:
        return
    if isinstance(variables, str):
        variables = [variables]
    unknown = [v for v in variables if v not in ds.variables]
    if unknown:
        raise ArgumentError(
            f"variables {_names(unknown)} are not in the file; its variables: "
            f"{_names([str(k) for k in ds.variables])}; pass variables= naming some of them"
        )


def plan_of(
    ds: xr.Dataset, datakey: str, variables: Sequence[str] | None, time: str | None
) -> Plan:
    """The :class:`Plan` of a lazily opened file (see the module's rule).

    Raises
    ------
    ArgumentError
        ``variables`` names variables the file lacks (the message lists its variables).
    FileReadError
        ``NO_TIME``: no time, or not the one asked.
    """
    asked = [variables] if isinstance(variables, str) else variables
    _check_asked(ds, asked)
    tname = _choose_time(ds, datakey, asked, time)
    dim = ds.variables[tname].dims[0]
    others: dict[str, str] = {}  # other time dimension -> its time's name
    for k, v in ds.coords.variables.items():
        if _is_datetime(v) and v.dims[0] != dim:
            others.setdefault(v.dims[0], str(k))
    if TIME in ds.sizes and dim != TIME:
        others.setdefault(TIME, TIME)
    other_times: dict[str, list[str]] = {t: [] for t in others.values()}
    on_other = set()
    for k, v in ds.variables.items():
        hits = dict.fromkeys(others[d] for d in v.dims if d in others)
        if hits:
            on_other.add(str(k))
        for t in hits:
            if str(k) != t:
                other_times[t].append(str(k))
    skip = on_other | {tname, TIME}  # a variable named time is the record's name
    pool = list(ds.data_vars) if asked is None else list(asked)
    data, support = [], []
    for name in dict.fromkeys(str(v) for v in pool if str(v) not in skip):
        if dim in ds.variables[name].dims and name not in ds.coords:
            data.append(name)
        elif asked is not None:
            support.append(name)
    labelled = {d for v in (*data, *support) for d in ds.variables[v].dims}
    for k, v in ds.variables.items():
        name = str(k)
        if name in skip or name in data or name in support:
            continue
        static = dim not in v.dims
        if (name in ds.coords or (asked is None and static)) and set(v.dims) <= labelled:
            support.append(name)
    return Plan(tname, str(dim), tuple(data), tuple(support), other_times)


def check_bytes(ds: xr.Dataset, plan: Plan, datakey: str, max_bytes: int) -> int:
    """The bytes the plan's variables decode to, from their declared shapes and dtypes.

    Raises
    ------
    FileReadError
        ``FILE_TOO_LARGE`` when over ``max_bytes`` (nothing has been read).
    """
    sizes = {n: int(ds.variables[n].size) * ds.variables[n].dtype.itemsize for n in plan.names}
    total = sum(sizes.values())
    if total > max_bytes:
        big = max(sizes, key=sizes.__getitem__)
        var = ds.variables[big]
        raise FileReadError(
            datakey,
            Reason.FILE_TOO_LARGE,
            f"its variables declare {total:,} bytes (the largest, {safe_text(big, 60)!r}: "
            f"{var.dtype} of shape {var.shape}, {sizes[big]:,} bytes), over "
            f"intake_helio.max-series-bytes = {max_bytes:,}; ask fewer variables= or "
            "raise the setting",
        )
    return total


def check_times(values: np.ndarray, datakey: str, name: str) -> np.ndarray:
    """``values`` as ``datetime64[ns]``, or ``BAD_TIMES`` naming the first bad record.

    Raises
    ------
    FileReadError
        ``BAD_TIMES``: a NaT (fill value), or a time before the one it follows.
    """
    times = np.asarray(values).astype("datetime64[ns]")
    nat = np.isnat(times)
    if nat.any():
        i = int(np.argmax(nat))
        raise FileReadError(
            datakey,
            Reason.BAD_TIMES,
            f"{safe_text(name, 60)!r} is a fill value (NaT) at record {i} of "
            f"{times.size}; the file's times must all be valid",
        )
    back = times[1:] < times[:-1]
    if back.any():
        i = int(np.argmax(back)) + 1
        raise FileReadError(
            datakey,
            Reason.BAD_TIMES,
            f"{safe_text(name, 60)!r} is unsorted: record {i} ({times[i]}) is before "
            f"record {i - 1} ({times[i - 1]}); the file's times must be sorted",
        )
    return times
