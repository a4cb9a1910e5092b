"""The netCDF room's :class:`~intake_helio.base.backends.SeriesBackend`: bytes to xarray.

``open`` and ``scan`` take the same steps on the file's lazy Dataset
(:func:`~intake_helio.netcdf.engines.open_lazy`): plan the variables and the time
(:func:`~intake_helio.netcdf.plan.plan_of`), check the bytes they declare against
``max_bytes`` (nothing read yet), read and check the times; then ``open`` loads the planned
variables and closes the file, ``scan`` gives the times and the layout ``open`` would give
(:func:`layout_of` of its Dataset) without reading any other variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from ..base.backends import TIME, Kind, Layout, Scan
from ..base.errors import FileReadError, picklable_cause
from ..base.reasons import Reason
from ..base.text import safe_text
from .engines import engine_of, open_lazy
from .plan import Plan, check_bytes, check_times, plan_of

__all__ = ["BACKEND", "NetcdfBackend", "layout_of"]

#: The variables asked of a file (None: every data variable along its time).
Names = Sequence[str] | None


def _layout(items: Iterable[tuple[str, xr.Variable, tuple[str, ...]]]) -> Layout:
    """Per ``(name, variable, dims in the Dataset)``: dtype, dims, sizes but ``time``'s."""
    layout: Layout = {}
    for name, var, dims in items:
        if name == TIME:
            continue
        sizes = tuple(int(n) for d, n in zip(dims, var.shape, strict=True) if d != TIME)
        layout[name] = (str(var.dtype), dims, sizes)
    return layout


def layout_of(ds: xr.Dataset) -> Layout:
    """The :data:`~intake_helio.base.backends.Layout` of a series Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        A Dataset along ``time`` (as :meth:`NetcdfBackend.open` gives).

    Returns
    -------
    Layout
        Per data variable and coordinate other than ``time``: ``(dtype string, dims,
        sizes of the dims other than time)``.
    """
    return _layout((str(k), v, tuple(map(str, v.dims))) for k, v in ds.variables.items())


def _dims(var: xr.Variable, plan: Plan) -> tuple[str, ...]:
    """The variable's dims in the Dataset: the record dimension becomes ``time``."""
    return tuple(TIME if d == plan.dim else str(d) for d in var.dims)


def _values(var: xr.Variable, name: str, datakey: str) -> np.ndarray:
    """One variable's decoded values, or ``CORRUPT_DATA`` for what the engine cannot read."""
    try:
        return np.asarray(var.values)
    except MemoryError:
        raise
    except Exception as exc:
        raise FileReadError(
            datakey,
            Reason.CORRUPT_DATA,
            f"reading variable {safe_text(name, 60)!r} failed "
            f"({safe_text(f'{type(exc).__name__}: {exc}')})",
        ) from picklable_cause(exc)


class _Prepared:
    """The steps ``open`` and ``scan`` share, on an open file: plan, bound, times."""

    def __init__(
        self,
        ds: xr.Dataset,
        datakey: str,
        variables: Names,
        time: str | None,
        max_bytes: int,
    ):
        self.ds = ds
        self.plan = plan_of(ds, datakey, variables, time)
        check_bytes(ds, self.plan, datakey, max_bytes)
        tvar = ds.variables[self.plan.time]
        self.times = check_times(_values(tvar, self.plan.time, datakey), datakey, self.plan.time)

    def items(self) -> Iterable[tuple[str, xr.Variable, tuple[str, ...]]]:
        """``(name in the Dataset, lazy variable, dims in the Dataset)``, time first."""
        yield TIME, self.ds.variables[self.plan.time], (TIME,)
        for name in (*self.plan.coords, *self.plan.data):
            var = self.ds.variables[name]
            yield name, var, _dims(var, self.plan)

    def attrs(self) -> dict:
        """The file's attributes and which time was chosen (and which were not)."""
        return {
            **self.ds.attrs,
            "intake_helio_time": self.plan.time,
            "intake_helio_other_times": self.plan.other_times_text(),
        }

    def load(self, datakey: str, records: int | None = None) -> xr.Dataset:
        """The planned variables loaded into a new Dataset along ``time`` (its first
        ``records`` records only, when given)."""
        built = {}
        cut = slice(None) if records is None else slice(0, records)
        for name, var, dims in self.items():
            if name == TIME:
                values = self.times[cut]
            else:
                part = (
                    var
                    if records is None or self.plan.dim not in var.dims
                    else (var.isel({self.plan.dim: cut}))
                )
                values = _values(part, name, datakey)
            built[name] = xr.Variable(dims, values, dict(var.attrs), dict(var.encoding))
        data = {k: built[k] for k in self.plan.data}
        coords = {k: v for k, v in built.items() if k not in data}
        return xr.Dataset(data, coords=coords, attrs=self.attrs())


class NetcdfBackend:
    """netCDF3 (classic, 64-bit offset), netCDF4 and HDF5 files through xarray's engines.

    netCDF4/HDF5 with ``engine="h5netcdf"``, netCDF3 with ``engine="scipy"``, both on an
    in-memory file object (never the netCDF4 library); see :mod:`intake_helio.netcdf` for
    the choice of time and variables. Module-level and stateless, so it pickles.
    """

    name = "netcdf"
    formats = ("netcdf3", "netcdf4", "hdf5")

    def guess_can_open(self, head: bytes) -> bool:
        """Whether ``head`` starts with the HDF5 or a netCDF3 (classic, 64-bit) magic number.

        Parameters
        ----------
        head : bytes
            The file's first bytes (8 or more).

        Returns
        -------
        bool
        """
        return engine_of(head) is not None

    def scan(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Names,
        time: str | None,
        max_bytes: int,
        like: Scan | None = None,
    ) -> Scan:
        """The times and layout of one file (only the time variable is read; ``like`` is
        not needed: the layout comes from the file's metadata).

        Parameters
        ----------
        data : bytes
            The whole file.
        datakey : str
            Its name in every error.
        variables : sequence of str or None
            The variables asked (None: every data variable along the time).
        time : str or None
            The time variable (None: chosen as :mod:`intake_helio.netcdf.plan` says).
        max_bytes : int
            Most bytes the planned variables may declare (``intake_helio.max-series-bytes``).

        Returns
        -------
        Scan

        Raises
        ------
        FileReadError
            For a bad file: ``EMPTY_FILE``, ``NOT_NETCDF``, ``TRUNCATED``,
            ``CORRUPT_DATA``, ``NO_TIME``, ``BAD_TIMES``, ``FILE_TOO_LARGE``.
        ArgumentError
            ``variables`` names variables the file lacks.
        """
        with open_lazy(data, datakey) as ds:
            prepared = _Prepared(ds, datakey, variables, time, max_bytes)
            return Scan(prepared.times, _layout(prepared.items()), prepared.plan.time)

    def template(
        self, data: bytes, *, datakey: str, variables: Names, time: str | None, max_bytes: int
    ) -> tuple[Scan, xr.Dataset]:
        """The file's scan and the structure of its :meth:`open`: the planned variables
        loaded for their first two records only. Parameters, raises: as :meth:`scan`."""
        with open_lazy(data, datakey) as ds:
            prepared = _Prepared(ds, datakey, variables, time, max_bytes)
            scan = Scan(prepared.times, _layout(prepared.items()), prepared.plan.time)
            return scan, prepared.load(datakey, records=2)

    def open(
        self, data: bytes, *, datakey: str, variables: Names, time: str | None, max_bytes: int
    ) -> xr.Dataset:
        """The file as one Dataset along ``time``, loaded in memory, the file closed.

        Parameters
        ----------
        data, datakey, variables, time, max_bytes
            As for :meth:`scan`.

        Returns
        -------
        xarray.Dataset
            The conventions of :mod:`intake_helio.base.backends`.

        Raises
        ------
        FileReadError, ArgumentError
            As for :meth:`scan`.
        """
        with open_lazy(data, datakey) as ds:
            return _Prepared(ds, datakey, variables, time, max_bytes).load(datakey)

    def read(
        self,
        data: bytes,
        *,
        datakey: str,
        variables: Names,
        time: str,
        names: Mapping[str, Kind],
        start: np.datetime64,
        stop: np.datetime64,
        max_bytes: int,
    ) -> dict[str, np.ndarray]:
        """A read task's records (:meth:`~intake_helio.base.backends.SeriesBackend.read`):
        the engine reads ``names`` for the records of ``[start, stop)`` only.

        Raises: as :meth:`scan`, and ``VARIABLES_DIFFER`` for a name the file lacks.
        """
        with open_lazy(data, datakey) as ds:
            prepared = _Prepared(ds, datakey, variables, time, max_bytes)
            t = prepared.times
            lo = int(np.searchsorted(t, np.datetime64(start, "ns"), side="left"))
            hi = max(lo, int(np.searchsorted(t, np.datetime64(stop, "ns"), side="left")))
            out = {TIME: t[lo:hi]}
            for name in names:
                if name not in ds.variables:
                    raise FileReadError(
                        datakey,
                        Reason.VARIABLES_DIFFER,
                        f"no variable {safe_text(name, 60)!r} now (it had when the series "
                        "was opened)",
                    )
                var = ds.variables[name]
                dims = _dims(var, prepared.plan)
                cut = var.isel({prepared.plan.dim: slice(lo, hi)})
                out[name] = np.moveaxis(_values(cut, name, datakey), dims.index(TIME), 0)
            return out

    def __repr__(self) -> str:
        return "NetcdfBackend()"


#: The room's backend (what the series layer dispatches to).
BACKEND = NetcdfBackend()
