"""A time-sliced file index -> a lazy ``(time, y, x)`` xarray DataArray.

The graph has one task per frame (per row band with ``chunks={"y": N}``), each
reading one FITS file through fsspec; it is built as one ``HighLevelGraph`` layer
with a deterministic name, so a year of 129,758 frames builds in about a second.
Only the headers of the first few frames are read before compute (``shape-probes``,
concurrently): the most common shape among them is the array's, so one odd frame at the
start of the list fails on its own ("shape mismatch", "image too large") and the others
keep their values. The index's ``filesize`` of each file bounds every read of it.

With ``on_error="nan"`` each read task returns ``(block, reason)``; the frames
layer takes the block and a ``read_status`` coordinate along ``time`` takes the
reason, so computing ``frames.mean(("y", "x"))`` yields every frame's value and, for
NaN frames, why, from one read per frame.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.highlevelgraph import HighLevelGraph

from ..base.digest import update_joined
from ..base.errors import FrameReadError
from ..base.reasons import Reason, refusals
from ..base.settings import Settings, current
from ..base.sizes import known_sizes
from ..fits import frame as fits_frames
from ..io.storage import StorageOptions
from ..io.transport import filesystem
from .layers import FrameLayer, HeaderLayer, HeaderValueLayer, PickLayer, StatusLayer
from .options import FrameOptions, FramesError, frame_options
from .solar import WCS_KEYS, reference_attrs, solar_coords
from .spec import REFUSED, FrameSpec, ReadPlan, Window
from .tasks import read_header_row

__all__ = ["WCS_KEYS", "FramesError", "open_frames", "read_headers"]


# --------------------------------------------------------------------------- building
def _token(*parts: Any, datakeys: Sequence[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    update_joined(h, datakeys)  # as "\n".join(datakeys), without the joined text
    return h.hexdigest()[:24]


def _bands(rows: slice, band_rows: int | None) -> list[slice]:
    size = band_rows or (rows.stop - rows.start)
    return [slice(a, min(a + size, rows.stop)) for a in range(rows.start, rows.stop, size)]


def _probe_one(key: str, storage_options, hdu, settings: Settings, filesize):
    """Probe one frame: its FrameInfo, or the exception that probing it raised."""
    try:
        fs, path = filesystem(key, storage_options)
        return fits_frames.probe_frame(fs, path, hdu=hdu, settings=settings, filesize=filesize)
    except Exception as exc:
        return exc


def _refused(df: pd.DataFrame) -> dict[str, str]:
    """``{datakey: reason}`` of the rows never to be read (a ``refused`` column's reasons)."""
    if REFUSED not in df:
        return {}
    out: dict[str, str] = {}
    for key, why in zip(df["datakey"].astype(str), refusals(df[REFUSED], FramesError), strict=True):
        if why:
            out.setdefault(key, why)
    return out


def _probe(
    datakeys, storage_options, hdu, on_error, settings: Settings, filesizes=None, refused=None
):
    """The frames' HDU, shape and header: the most common among the first readable frames.

    Up to ``settings.shape_probes`` readable frames are probed (header bytes only, a batch
    at a time, concurrently), trying at most ``max(max_probes, shape_probes)`` frames with
    ``on_error="nan"``, the first ``shape_probes`` with ``"raise"`` (where the first
    frame's error is raised, as its own read would raise it). The (HDU, shape) found most
    often wins, the earliest on a tie; its first frame gives the header.
    """
    refused = refused or {}
    # "": a placeholder (channels); a refused datakey is never read
    present = [(i, k) for i, k in enumerate(datakeys) if k and k not in refused]
    if not present and refused:
        raise FrameReadError(
            next(iter(refused)),
            Reason.NO_READABLE_FRAME,
            f"the URL policy refuses every datakey of the list ({len(refused)}): "
            f"{next(iter(refused.values()))}",
        )
    if not present:
        raise FrameReadError(
            "", Reason.NO_FRAME_WITHIN_TOLERANCE, "no file in the list, only placeholders"
        )
    want = settings.shape_probes
    budget = max(settings.max_probes, want) if on_error == "nan" else want
    todo = present[:budget]
    sizes = filesizes if filesizes is not None else (None,) * len(datakeys)
    found: list[fits_frames.FrameInfo] = []
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(want, 8)) as pool:
        while todo and len(found) < want:
            batch, todo = todo[: want - len(found)], todo[want - len(found) :]
            outs = pool.map(
                lambda ik: _probe_one(ik[1], storage_options, hdu, settings, sizes[ik[0]]),
                batch,
            )
            for (i, key), out in zip(batch, list(outs), strict=True):
                if not isinstance(out, BaseException):
                    found.append(out)
                    continue
                err = fits_frames.as_frame_error(key, out)
                if on_error == "raise" and i == present[0][0]:
                    if err is out:
                        raise err
                    raise err from out
                errors.append(f"{key}: {err.reason}")
    if not found:
        raise FrameReadError(
            present[0][1],
            Reason.NO_READABLE_FRAME,
            f"probed {len(errors)} frame(s): {_few(errors)}",
        )
    votes = collections.Counter((f.hdu, tuple(f.shape)) for f in found)
    best = max(votes.values())
    return next(f for f in found if votes[(f.hdu, tuple(f.shape))] == best)


def _few(items: Sequence[str], keep: int = 3) -> str:
    """The first ``keep`` items, then ``"... (N more)"``: messages stay short."""
    more = len(items) - keep
    return "; ".join(items[:keep]) + (f"; ... ({more} more)" if more > 0 else "")


def _filesizes(df: pd.DataFrame) -> tuple[int, ...] | None:
    """The index's ``filesize`` per row (0 where unknown), or None without the column."""
    if "filesize" not in df:
        return None
    return tuple(known_sizes(df["filesize"]).tolist())


def open_frames(
    df: pd.DataFrame,
    *,
    hdu: int | str = "auto",
    cutout: Mapping[str, Any] | Sequence[Any] | None = None,
    header_keys: Sequence[str] = (),
    units: str = "DN",
    on_error: str = "raise",
    chunks: Mapping[str, int] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    quality: str | None = None,
    options: FrameOptions | None = None,
    _like: FrameSpec | None = None,
) -> xr.DataArray:
    """Lazy frames of the files in ``df`` as an ``xarray.DataArray`` ``(time, y, x)``.

    Parameters
    ----------
    df : pandas.DataFrame
        A file list with ``start`` and ``datakey`` columns (``stop`` and ``filesize``
        are used when present), e.g. from :meth:`Dataset.files`.
    hdu : "auto", int or str
        The image HDU: the first with image data (``"auto"``), an index, or an EXTNAME.
    cutout : dict or (SkyCoord, SkyCoord), optional
        ``dict(y=slice(y0, y1), x=slice(x0, x1))``: read only these pixels (only the
        tiles they touch are fetched, with ranged reads). In solar coordinates:
        ``dict(Tx=slice(-600, 0), Ty=slice(-300, 300))`` (helioprojective arcsec) or
        ``(bottom_left, top_right)`` ``SkyCoord`` corners in any frame sunpy can transform
        to helioprojective; mapped to the pixel window with the first frame's WCS (the
        window of sunpy's ``Map.submap(bottom_left, top_right=...)`` on that frame), then
        read as a pixel cutout. Pixel and arcsec keys cannot be mixed.
    header_keys : sequence of str
        Header cards to add as lazy coordinates along ``time`` (header bytes only).
    units : {"DN", "DN/s"}
        ``"DN/s"`` divides each frame by its own ``EXPTIME`` in the same read.
    on_error : {"raise", "nan"}
        ``"raise"``: an unreadable frame raises :class:`~intake_helio.FrameReadError` at
        compute. ``"nan"``: it becomes NaN and its reason is in the ``read_status``
        coordinate (``"ok"`` for good frames).
    quality : {None, "good"}
        ``"good"``: a frame whose header ``QUALITY`` is not 0 is treated as unreadable with
        the reason ``"quality flag 0x%08x"`` (e.g. ``"quality flag 0x00000400"``), checked
        in its read task before any pixel is decoded; a frame without ``QUALITY`` is good.
        None (default): every frame is read whatever its ``QUALITY``.
    chunks : dict, optional
        ``{"y": N}`` splits each frame into row bands of N rows (each band reads only
        its own tiles). Default: one chunk per frame.
    storage_options : dict, optional
        fsspec options for the data files (e.g. ``anon``, ``endpoint_url``).
    attrs : dict, optional
        Extra attributes (dataset id, title, endpoint).
    options : FrameOptions, optional
        ``hdu``, ``cutout``, ``header_keys``, ``units``, ``on_error``, ``chunks`` and
        ``quality`` already checked by :func:`~intake_helio.frames.options.frame_options`
        (then those keywords are left out).

    Returns
    -------
    xarray.DataArray
        float32 frames (BLANK as NaN) with coordinates ``time``, ``stop``, ``datakey``,
        ``filesize``, ``y``, ``x`` and any ``header_keys``; for a helioprojective WCS also
        ``Tx`` (along ``x``) and ``Ty`` (along ``y``) in arcsec, from the reference frame
        (the first probed frame) along its reference row and column. ``attrs`` hold the
        reference frame's WCS and observer cards (:data:`WCS_KEYS`, ``CRPIX1/2`` of the
        window), so ``sunpy.map.Map(frames[0].values, frames.attrs)`` is that frame's map;
        other frames' own cards are available as ``header_keys``.
    """
    given = dict(
        hdu=hdu,
        cutout=cutout,
        header_keys=header_keys,
        units=units,
        on_error=on_error,
        chunks=chunks,
        quality=quality,
    )
    if options is None:
        options = frame_options(**given)
    elif given != _DEFAULT_OPTIONS:
        changed = sorted(k for k in given if given[k] != _DEFAULT_OPTIONS[k])
        raise FramesError(
            f"open_frames got options= and also {', '.join(changed)}; give the options in one "
            "of the two ways (FrameOptions.with_(...) changes some of them)"
        )
    _check_file_list(df)
    return _frames(df, options, StorageOptions(storage_options or {}), attrs, _like)


_DEFAULT_OPTIONS = FrameOptions().arguments()


def _check_file_list(df: Any) -> None:
    if not isinstance(df, pd.DataFrame) or not {"start", "datakey"} <= set(df.columns):
        raise FramesError(
            "open_frames needs a DataFrame with 'start' and 'datakey' columns "
            "(e.g. from Dataset.files()); got "
            + (f"columns {list(df.columns)}" if isinstance(df, pd.DataFrame) else type(df).__name__)
        )
    if len(df) == 0:
        raise FramesError(
            "no files in the requested range (the file list is empty); widen start/stop "
            "or check the dataset's time coverage"
        )


def _frames(
    df: pd.DataFrame,
    options: FrameOptions,
    storage: StorageOptions,
    attrs: Mapping[str, Any] | None,
    like: FrameSpec | None,
) -> xr.DataArray:
    """:func:`open_frames` once its arguments are checked: probe, window, graph, coords."""
    settings = current()
    # the datakey coordinate first: xarray converts an object array through pandas (new
    # strings); the spec then shares those strings (one per frame, not two)
    key_coord = xr.Variable("time", np.asarray(df["datakey"].astype(str).tolist(), dtype=object))
    datakeys = tuple(key_coord.values)
    filesizes = _filesizes(df)
    refused = _refused(df)
    on_error = options.on_error
    placeholders = like is not None and not any(datakeys)
    if placeholders:
        # only placeholders (a channel of open_channels with no frame near any time): the
        # frames of ``like`` give the HDU and shape; there is no header of this dataset
        info = fits_frames.FrameInfo(like.hdu, tuple(like.shape), {}, False, None, None)
        hdu = like.hdu
    else:
        info = _probe(datakeys, storage, options.hdu, on_error, settings, filesizes, refused)
        # "auto": each frame's own image HDU, the probed one tried first (forms may be mixed)
        hdu = fits_frames.AutoHDU(info.hdu) if options.hdu == "auto" else options.hdu
    if options.cutout is None:
        rows, cols = slice(0, info.shape[0]), slice(0, info.shape[1])
    else:
        rows, cols = options.cutout.window(info.shape, info.header)
    bands = _bands(rows, options.band_rows)
    # the whole frame in one chunk: each task fetches its file in one request
    whole = len(bands) == 1 and (rows, cols) == (slice(0, info.shape[0]), slice(0, info.shape[1]))
    token = _token(
        hdu,
        rows,
        cols,
        options.units,
        on_error,
        options.quality,
        [(b.start, b.stop) for b in bands],
        sorted(storage.items(), key=str),
        hashlib.sha1(repr(filesizes).encode()).hexdigest(),
        sorted(refused.items()),
        datakeys=datakeys,
    )
    spec = FrameSpec(
        datakeys,
        storage,
        hdu,
        rows,
        cols,
        options.units,
        tuple(info.shape),
        settings,
        filesizes,
        quality=options.quality,
        refused=refused,
    )
    plan = ReadPlan(
        storage, hdu, options.units, settings, on_error, whole, options.quality == "good"
    )
    windows = [Window(band, cols) for band in bands]
    data, status = _arrays(spec, plan, windows, token)
    coords: dict[str, Any] = {
        "time": ("time", pd.DatetimeIndex(df["start"]).as_unit("ns").to_numpy()),
        "datakey": key_coord,
        "y": ("y", np.arange(rows.start, rows.stop)),
        "x": ("x", np.arange(cols.start, cols.stop)),
    }
    if "stop" in df:
        coords["stop"] = ("time", pd.DatetimeIndex(df["stop"]).as_unit("ns").to_numpy())
    if "filesize" in df:
        coords["filesize"] = ("time", df["filesize"].to_numpy(np.int64))
    if status is not None:
        coords["read_status"] = ("time", status)
    coords.update(_header_coords(spec, options.header_keys, info.header, token))
    coords.update(solar_coords(info.header, rows, cols))

    out_attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
    out_attrs["units"] = options.units
    out_attrs.update(reference_attrs(info.header, rows, cols))
    return xr.DataArray(
        data,
        dims=("time", "y", "x"),
        coords=coords,
        attrs=out_attrs,
        name=str(out_attrs.get("dataset") or "frames"),
    )


def _arrays(
    spec: FrameSpec, plan: ReadPlan, windows: list[Window], token: str
) -> tuple[da.Array, da.Array | None]:
    """The frames' dask array (one read task per frame and band, one layer whose tasks are
    made when asked: :mod:`.layers`) and, with ``on_error="nan"``, the ``read_status``
    array picked from the same reads."""
    n, nb = len(spec.datakeys), len(windows)
    name = f"helio-frames-{token}"
    # with on_error="raise" the reads are the array's own (single) layer; with "nan" they
    # return (block, reason) and the array and read_status layers pick from them
    read = name if plan.on_error == "raise" else f"helio-read-{token}"
    suffix = (0,) if plan.on_error == "raise" else ()
    reads = FrameLayer(read, n, nb, suffix, None, spec, windows, plan)
    layers: dict[str, Any] = {read: reads}
    deps: dict[str, set] = {read: set()}
    if plan.on_error == "nan":
        layers[name] = PickLayer(name, n, nb, (0,), None, read, 0)
        deps[name] = {read}
    chunk_rows = tuple(w.rows.stop - w.rows.start for w in windows)
    nx = windows[0].cols.stop - windows[0].cols.start
    data = da.Array(
        HighLevelGraph(layers, deps), name, chunks=((1,) * n, chunk_rows, (nx,)), dtype=np.float32
    )
    if plan.on_error == "raise":
        return data, None
    sname = f"helio-status-{token}"
    status = da.Array(
        HighLevelGraph(
            {read: reads, sname: StatusLayer(sname, n, None, (), None, read, nb)},
            {read: set(), sname: {read}},
        ),
        sname,
        chunks=((1,) * n,),
        dtype=object,
    )
    return data, status


def _header_coords(spec: FrameSpec, keys, probe_header, token) -> dict[str, Any]:
    if not keys:
        return {}
    n = len(spec.datakeys)
    hname = f"helio-headers-{token}-{'-'.join(keys)}"
    hlayer = HeaderLayer(hname, n, None, (), None, spec, tuple(keys))
    out = {}
    for k_index, key in enumerate(keys):
        sample = probe_header.get(key)
        if isinstance(sample, bool | str) or sample is None:
            dtype, conv = object, _as_object
        else:
            dtype, conv = np.float64, _as_float
        cname = f"{hname}-{key}"
        layer = HeaderValueLayer(cname, n, None, (), None, hname, k_index, conv)
        arr = da.Array(
            HighLevelGraph({hname: hlayer, cname: layer}, {hname: set(), cname: {hname}}),
            cname,
            chunks=((1,) * n,),
            dtype=dtype,
        )
        out[key] = ("time", arr)
    return out


def _as_float(value) -> np.ndarray:
    try:
        return np.array([np.nan if value is None else float(value)], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([np.nan])


def _as_object(value) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


def read_headers(
    df: pd.DataFrame,
    keys: Sequence[str],
    *,
    hdu: int | str = "auto",
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Header values of every file of ``df``, read in parallel (header bytes only).

    Returns a DataFrame with ``start``, ``datakey`` and one column per key (None where
    a file or key is missing), computed with the active dask scheduler.
    """
    if isinstance(keys, str):
        keys = (keys,)
    keys = tuple(str(k).upper() for k in keys)
    plan = ReadPlan(StorageOptions(storage_options or {}), hdu, "DN", current())
    filesizes = _filesizes(df) or (None,) * len(df)
    tasks = [
        dask.delayed(read_header_row, pure=True)(key, size, plan, keys)
        for key, size in zip(df["datakey"].astype(str), filesizes, strict=True)
    ]
    rows = dask.compute(*tasks) if tasks else []
    out = pd.DataFrame(list(rows), columns=list(keys))
    out.insert(0, "datakey", df["datakey"].astype(str).to_numpy())
    out.insert(0, "start", df["start"].to_numpy())
    return out
