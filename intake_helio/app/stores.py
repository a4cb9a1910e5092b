"""A run's results in a Zarr store, written part by part, resumable after any interruption.

The store (Zarr format 2, readable by ``xarray.open_zarr`` and by zarr-python 2 and 3) is
created with the run's whole time axis: ``time`` (CF-encoded like the netCDF files:
int64 microseconds since 1970), ``datakey`` and ``status`` (variable-length UTF-8; ``""``
until the frame's part is saved), chunked along ``time`` by part so that every part
writes whole chunks of its own. The outputs' arrays (float64 with NaN fill, ``count``
int64) are added when the first frame with values arrives, their shapes taken from it.

A run of several channels (``channels=[...]``) adds a leading ``channel`` dimension to
``datakey``, ``status`` and every output (chunks of one channel and one part); its parts are
numbered channel by channel: part ``p`` of channel ``k`` is number ``k * parts_per_channel + p``.

The group ``_resume`` (ignored by xarray) holds the run's identity and ``part_done``, one
byte per part set only after that part's data is written: it is the authoritative record
of what is saved. ``--resume`` with the same identity skips those parts; an identity that
differs is refused. The root attribute ``complete`` is False until every part is saved and
is set (then the metadata consolidated) last, so a reader can tell a finished store from
an interrupted one.

The store's directory is trusted only as far as the tool made it
(:mod:`intake_helio.app.outdir`): a store that is a symbolic link, or holds one, is refused;
an existing directory is deleted only when it is a store of intake-helio (it has the
``_resume`` group), and resumed only when its identity is the run's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..base.digest import update_joined
from ..base.errors import ArgumentError, HelioError
from ..base.reasons import Reason
from ..base.text import as_text
from ..compute.assembly import FRAME_TIME_ATTRS
from .outdir import OutputDirError, check_same_run, refuse_symlink
from .results import TIME_ENCODING
from .tables import CHANNEL, cf_times

__all__ = ["StoreError", "ZarrStore"]

_RESUME = "_resume"
_DONE = "part_done"
_TEXT = ("status", "datakey")
#: Variables that are not outputs: the text ones and each frame's own time.
_NOT_OUTPUTS = (*_TEXT, "frame_time")


def fingerprint(datakeys) -> str:
    """A short hash of a run's frame list (part of its identity; as older versions made it)."""
    # the bytes of "\n".join(map(str, datakeys)), hashed a slice at a time (not joined)
    return update_joined(hashlib.sha1(), datakeys).hexdigest()[:16]


class StoreError(HelioError, RuntimeError):
    """A Zarr store that cannot be used as it is (e.g. a part missing at the end)."""


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _plain_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a symbolic link)."""
    return path.is_file() and not path.is_symlink()


def _open_group(path: Path, mode: str = "r+"):
    import zarr

    return zarr.open_group(str(path), mode=mode, zarr_format=2, use_consolidated=False)


class ZarrStore:
    """The results of one run in a Zarr store at ``path``, saved part by part.

    Parameters
    ----------
    path : path
        The store's directory (e.g. ``<out>/reduce.zarr``).
    identity : dict
        What makes two runs the same (dataset, range, functions, options, frames);
        resuming with a different identity is refused.
    resume : bool
        Keep the parts saved by an earlier run with the same identity; otherwise (or when
        there is no such store) start afresh.
    times, datakeys : array-like
        The whole run's frame times and files, in frame order; with ``channels``,
        ``datakeys`` has one row per channel.
    part_size : int
        Frames per part (the chunk length along ``time``).
    attrs : dict, optional
        Attributes of the dataset (dataset, title, units, ...).
    var_attrs : dict, optional
        Attributes of each output variable, by name, set when the variable is created.
    channels : sequence of str, optional
        The channels (dataset ids) of a run of several: every variable gets a leading
        ``channel`` dimension and :meth:`part_number` numbers the parts.
    frame_times : array-like, optional
        Each frame's own time, shaped as ``datakeys`` (NaT: no frame), saved as the
        ``frame_time`` variable; None: ``times``.

    Raises
    ------
    ArgumentError
        ``resume`` with a store of a different run.
    OutputDirError
        ``path`` is (or holds) a symbolic link, or holds something that is not a Zarr
        store of intake-helio (nothing is deleted). A subclass of ``ArgumentError``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        identity: Mapping[str, Any],
        resume: bool,
        *,
        times,
        datakeys,
        part_size: int,
        attrs: Mapping[str, Any] | None = None,
        var_attrs: Mapping[str, Mapping[str, Any]] | None = None,
        channels: list[str] | tuple[str, ...] | None = None,
        frame_times=None,
    ):
        self.path = Path(path)
        refuse_symlink(self.path, "Zarr store")
        self.identity = _json(dict(identity))
        self.part_size = int(part_size)
        self.n = len(times)
        self.channels = None if channels is None else [str(c) for c in channels]
        #: Parts of each channel (of the run, without channels).
        self.parts_per_channel = math.ceil(self.n / self.part_size)
        #: Parts in all: ``parts_per_channel`` times the number of channels.
        self.parts = self.parts_per_channel * (len(self.channels) if self.channels else 1)
        self.var_attrs = {k: dict(v) for k, v in (var_attrs or {}).items()}
        if resume and self.path.is_dir():
            self._refuse_links()  # before anything is read or written through one
        old = self._stored_identity() if resume else None
        #: Whether this store holds an earlier run's parts (``resume`` with its identity).
        self.resumed = old is not None
        if old is not None:
            check_same_run(self.path, old, self.identity)
        else:
            self._create(times, datakeys, attrs or {}, frame_times)
        self._group = _open_group(self.path)
        self._done = self._group[f"{_RESUME}/{_DONE}"]

    # ----------------------------------------------------------------- creation
    @staticmethod
    def recorded(path: str | os.PathLike) -> bool:
        """Whether ``path`` holds a store's record of a run (what ``resume`` looks for)."""
        return (Path(path) / _RESUME / ".zattrs").exists()

    def _stored_identity(self) -> dict | None:
        """The identity of the run saved at ``path``, None if there is no readable one."""
        if not self.recorded(self.path):
            return None
        try:
            group = _open_group(self.path, mode="r")
            ident = group[_RESUME].attrs.get("identity")
            done = group[f"{_RESUME}/{_DONE}"]
        except Exception:  # a store killed while it was being created: nothing saved yet
            return None
        if ident is None:
            return None
        ident = dict(ident)
        if done.shape != (self.parts,) and ident == self.identity:
            # the same run by its record, another number of parts: not a store to fill in
            ident["parts"] = list(done.shape)
        return ident  # another run (e.g. other channels, so another part count): refused

    def _refuse_links(self) -> None:
        """Refuse a store that holds a symbolic link (writes could go through it)."""
        for root, dirs, files in os.walk(self.path):
            for name in (*dirs, *files):
                refuse_symlink(Path(root) / name, "Zarr store entry")

    def _create(self, times, datakeys, attrs: Mapping[str, Any], frame_times=None) -> None:
        if self.path.exists():
            if not self.path.is_dir():
                raise OutputDirError(
                    f"{self.path} is a file; expected a Zarr store (directory): remove it or "
                    "choose another --out"
                )
            if any(self.path.iterdir()):
                if not _plain_file(self.path / ".zgroup"):
                    raise OutputDirError(
                        f"{self.path} holds files that are not a Zarr store, so none is "
                        "deleted; choose another --out, or remove it yourself"
                    )
                if not _plain_file(self.path / _RESUME / ".zgroup"):
                    raise OutputDirError(
                        f"{self.path} is a Zarr store that intake-helio did not write (no "
                        f"{_RESUME} group), so it is not deleted; choose another --out, or "
                        "remove it yourself"
                    )
            shutil.rmtree(self.path)  # our own store: links inside go, not their targets
        chunk = (min(self.part_size, max(self.n, 1)),)
        dims: tuple[str, ...] = ("time",)
        lead: tuple[int, ...] = ()
        coords: dict[str, Any] = {"time": ("time", cf_times(times))}
        if self.channels is not None:
            dims, lead = (CHANNEL, "time"), (len(self.channels),)
            coords[CHANNEL] = (CHANNEL, np.asarray(self.channels, dtype=str).astype(object))
        keys = as_text(datakeys)
        if keys.shape != (*lead, self.n):
            raise ArgumentError(
                f"datakeys of shape {keys.shape}; expected {(*lead, self.n)} (channels, times)"
            )
        if frame_times is None:
            own = np.broadcast_to(cf_times(times), keys.shape)
        else:
            own = cf_times(np.asarray(frame_times).reshape(-1)).reshape(keys.shape)
        base = xr.Dataset(
            {
                "datakey": (dims, keys, {"long_name": "URL of the frame's file"}),
                "frame_time": (dims, own, dict(FRAME_TIME_ATTRS)),
                "status": (
                    dims,
                    np.full((*lead, self.n), "", dtype=object),
                    {"long_name": "'ok' or the reason the frame has no value ('' not yet saved)"},
                ),
            },
            coords=coords,
            attrs={**_json(dict(attrs)), "complete": False},
        )
        text_chunks = (1,) * len(lead) + chunk
        enc = {
            "time": {**TIME_ENCODING, "chunks": chunk},
            "datakey": {"chunks": text_chunks},
            "frame_time": {**TIME_ENCODING, "chunks": text_chunks},
            "status": {"chunks": text_chunks},
        }
        if self.channels is not None:
            enc[CHANNEL] = {"chunks": lead}
        base.to_zarr(str(self.path), mode="w", encoding=enc, zarr_format=2, consolidated=True)
        group = _open_group(self.path)
        resume = group.create_group(_RESUME)
        resume.create_array(
            _DONE,
            shape=(self.parts,),
            chunks=(1,),  # one tiny file per part: marking a part never rewrites another's
            dtype="u1",
            fill_value=0,
            compressors=None,
        )
        # the identity last: a store without it is one whose creation did not finish
        resume.update_attributes(
            {"part_size": self.part_size, "outputs": [], "identity": self.identity}
        )
        self._consolidate()

    def _consolidate(self) -> None:
        import zarr

        zarr.consolidate_metadata(str(self.path), zarr_format=2)

    # ----------------------------------------------------------------- state
    def done(self) -> set[int]:
        """Numbers of the parts saved (the store's own record)."""
        return {int(p) for p in np.flatnonzero(self._done[:])}

    @property
    def complete(self) -> bool:
        """Whether the store was marked complete (every part saved)."""
        return bool(self._group.attrs.get("complete", False))

    @property
    def _lead(self) -> int:
        """Leading dimensions before ``time``: 1 with channels, else 0."""
        return 0 if self.channels is None else 1

    def outputs(self) -> dict[str, tuple[int, ...]]:
        """The output variables created so far (in output order), with one frame's shape."""
        names = self._group[_RESUME].attrs.get("outputs", [])
        return {str(k): tuple(self._group[k].shape[1 + self._lead :]) for k in names}

    def part_number(self, channel: int, part: int) -> int:
        """The number of part ``part`` of the ``channel``-th channel (``part`` without channels).

        Raises
        ------
        StoreError
            ``channel`` or ``part`` out of range.
        """
        count = len(self.channels) if self.channels is not None else 1
        if not (0 <= channel < count and 0 <= part < self.parts_per_channel):
            raise StoreError(
                f"part {part} of channel {channel} is not a part of {self.path} "
                f"({count} channel(s) of {self.parts_per_channel} part(s))"
            )
        return channel * self.parts_per_channel + part

    def _region(self, number: int) -> tuple[slice, tuple]:
        """``(time slice, index of the part's frames in every variable)``."""
        if not 0 <= number < self.parts:
            raise StoreError(f"part {number} is not a part of {self.path} (0..{self.parts - 1})")
        channel, part = divmod(number, self.parts_per_channel)
        a = part * self.part_size
        times = slice(a, min(a + self.part_size, self.n))
        return times, ((channel, times) if self._lead else (times,))

    # ----------------------------------------------------------------- writing
    def _add_outputs(self, part: xr.Dataset, names: list[str]) -> None:
        lead = (len(self.channels),) if self.channels is not None else ()
        for name in names:
            var = part[name]
            ints = np.issubdtype(var.dtype, np.integer)
            arr = self._group.create_array(
                name,
                shape=(*lead, self.n, *var.shape[1:]),
                chunks=((1,) * len(lead) + (min(self.part_size, self.n), *var.shape[1:])),
                dtype="i8" if ints else "f8",
                fill_value=None if ints else np.nan,
                attributes={
                    "_ARRAY_DIMENSIONS": [CHANNEL] * len(lead) + list(var.dims),
                    **_json(self.var_attrs.get(name, {})),
                },
                overwrite=True,  # one left by a run killed before it was listed below
            )
            if ints:  # no fill value (xarray would mask it), so zeros are written
                arr[:] = np.zeros(arr.shape, dtype=np.int64)
        self._group[_RESUME].update_attributes({"outputs": names})
        self._consolidate()

    def save(self, number: int, part: xr.Dataset) -> None:
        """Save one part (as ``map_frames`` passes it to ``on_part``), then mark it done.

        With channels, ``number`` is :meth:`part_number` and ``part`` one channel's part
        (dimension ``time``, as ``map_frames`` of that channel's frames gives it).

        A part whose outputs differ in names or shapes from those already in the store (a
        function whose outputs changed between an interrupted run and its resumption)
        has its frames' status set to a function error instead, as ``map_frames`` does
        for such frames within one run.
        """
        times, region = self._region(number)
        if part.sizes.get("time") != times.stop - times.start:
            raise StoreError(
                f"part {number} has {part.sizes.get('time')} frames; expected "
                f"{times.stop - times.start} (part size {self.part_size})"
            )
        names = [str(k) for k in part.data_vars if k not in _NOT_OUTPUTS]
        layout = {k: tuple(part[k].shape[1:]) for k in names}
        status = part["status"].to_numpy().astype(str).astype(object)
        have = self.outputs()
        if names and not have:
            self._add_outputs(part, names)
        elif names and layout != have:
            ok = status == str(Reason.OK)
            status[ok] = (
                f"{Reason.FUNCTION_ERROR}: outputs {layout} differ from the other frames' {have}"
            )
            names = []
        for name in names:
            self._group[name][region] = part[name].to_numpy()
        self._group["status"][region] = status
        self._done[number] = 1  # after the data: the record of what is saved

    def mark_complete(self) -> None:
        """Mark the store complete (every part saved); refused while a part is missing."""
        missing = sorted(set(range(self.parts)) - self.done())
        if missing:
            raise StoreError(
                f"{self.path}: {len(missing)} part(s) not saved (first: {missing[0]}); "
                "rerun with --resume to compute them"
            )
        self._group.attrs["complete"] = True
        self._consolidate()

    # ----------------------------------------------------------------- reading
    def load(self) -> xr.Dataset:
        """The whole store in memory, text as ``str`` objects, ``time`` decoded."""
        # read here, not through dask: on a cluster a dask load would send every chunk's
        # read to the workers and the values back
        with xr.open_zarr(str(self.path), consolidated=False, chunks=None) as ds:
            ds = ds.load()
        names = [*_TEXT, CHANNEL] if self.channels is not None else list(_TEXT)
        for name in names:
            raw = ds[name].to_numpy()
            ds[name] = (ds[name].dims, as_text(raw), ds[name].attrs)
        for var in ds.variables.values():
            var.encoding = {}
        own = ["frame_time"] if "frame_time" in ds else []  # stores made before it existed
        return ds[[*self.outputs(), *_TEXT, *own]]
