"""aiapy's degradation factor of every frame, at the engine's speed.

``aiapy.calibrate.degradation(channel, obstime, correction_table=...)`` is the factor AIA's
EUV channels have lost since launch: the effective area of the calibration epoch that
holds ``obstime`` over the first one's, times a cubic polynomial of the time since that
epoch's start. It costs ~1.3 ms a frame (a loop over the table in Python): 3 minutes for
a year of one channel, half an hour for the mission, on the client.

:func:`degradation_model` asks aiapy itself, once, for the factor at 4 Chebyshev nodes of
each stretch of time between two consecutive epoch bounds of the table (where the epoch
aiapy selects cannot change, so its factor is one cubic of time), and keeps the 4
interpolating coefficients: :class:`Degradation`, a few hundred numbers that travel with
the tasks. Each stretch is checked against aiapy at two more times (agreement within
:data:`CHECK_RTOL`, else :class:`~intake_helio.calibrate.tables.CalibrationError`: a
later aiapy whose factor is not a cubic between bounds would be noticed, not
approximated). A task then gets a frame's factor from its header (``WAVELNTH`` and the
time aiapy uses on a sunpy Map, ``Map.date``: ``DATE-OBS``, then ``DATE_OBS``,
``DATE-BEG``, ``DATE-AVG``, ``DATE-END``, then ``T_OBS``) in microseconds, without aiapy.

Times are taken as UTC without leap seconds (numpy's datetime64): a leap second inside a
stretch moves its factor by about 1e-9 of itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.polynomial import chebyshev

from ..base.errors import FrameReadError
from ..base.reasons import Reason
from .tables import CalibrationError, CorrectionTable, aiapy_calibrate, correction_table

__all__ = ["CHECK_RTOL", "TIME_CARDS", "Degradation", "degradation_model"]

#: How closely the cubic of each stretch must give aiapy's factor at the check times.
CHECK_RTOL = 1e-8

#: The header cards a frame's time is taken from, in sunpy's ``Map.date`` order (the time
#: aiapy's ``correct_degradation`` uses), then ``T_OBS``.
TIME_CARDS = ("DATE-OBS", "DATE_OBS", "DATE-BEG", "DATE-AVG", "DATE-END", "T_OBS")

_NODES = np.cos(np.pi * (np.arange(4) + 0.5) / 4)  # Chebyshev nodes of degree 4 on (-1, 1)
_CHECKS = np.array([-0.77, 0.31])  # two more times per stretch, checked against aiapy
_DAY = 86400.0


@dataclass(frozen=True)
class Degradation:
    """aiapy's degradation factor by channel and time, as one cubic per stretch.

    Attributes
    ----------
    channels : tuple of int
        The channels (Å) it holds.
    edges : tuple of numpy.ndarray
        Per channel, the stretches' bounds (float seconds since 1970, UTC), sorted.
    coeffs : tuple of numpy.ndarray
        Per channel, ``(stretches, 4)`` Chebyshev coefficients of the factor in
        ``x = (t - middle) / half`` of each stretch; NaN for a stretch outside every
        calibration epoch.
    table : str
        The table's :meth:`~intake_helio.calibrate.tables.CorrectionTable.describe`.
    span : tuple of float, optional
        The times (seconds, as ``edges``) the stretches were asked of aiapy for (the
        frames' times, a day either side); None: every stretch of the table.
    """

    channels: tuple[int, ...]
    edges: tuple[np.ndarray, ...]
    coeffs: tuple[np.ndarray, ...]
    table: str
    span: tuple[float, float] | None = None

    def factors(self, channel: Any, times: Any) -> np.ndarray:
        """The factor of each of ``times`` (datetime64-like) in ``channel``: NaN if none."""
        t = _seconds(np.asarray(times, dtype="datetime64[ns]"))
        try:
            c = self.channels.index(round(float(channel)))
        except (TypeError, ValueError):
            return np.full(t.shape, np.nan)
        return _evaluate(self.edges[c], self.coeffs[c], t)

    def __call__(self, header: Mapping[str, Any], key: str = "") -> float:
        """The factor of the frame with this ``header`` (raises its reason if none).

        Raises
        ------
        FrameReadError
            With reason ``"no degradation correction: ..."``: the channel is not in the
            table, the header has no usable time or it is outside the table's epochs.
        """
        wave = header.get("WAVELNTH")
        try:
            channel = round(float(wave))
            c = self.channels.index(channel)
        except (TypeError, ValueError, OverflowError):
            raise FrameReadError(key, self._reason(f"WAVELNTH {wave!r} {self._known()}")) from None
        when = _header_time(header)
        if when is None:
            raise FrameReadError(key, self._reason(f"no time in {', '.join(TIME_CARDS)}"))
        (t,) = _seconds(np.array([when]))
        if self.span is not None and not self.span[0] <= t <= self.span[1]:
            lo, hi = _from_seconds(np.array(self.span))
            raise FrameReadError(
                key, self._reason(f"{when} is not within the frames' times ({lo} to {hi})")
            )
        (value,) = _evaluate(self.edges[c], self.coeffs[c], np.array([t]))
        if not math.isfinite(value):
            raise FrameReadError(
                key, self._reason(f"{when} is outside the table's epochs for {channel} Å")
            )
        return float(value)

    def _known(self) -> str:
        return f"is not in the table ({', '.join(f'{c}' for c in self.channels)} Å)"

    def _reason(self, detail: str) -> str:
        return f"{Reason.NO_CORRECTION}: {detail}"


def degradation_model(
    table: Any = None, channels: Iterable[Any] | None = None, within: Any = None
) -> Degradation:
    """The :class:`Degradation` of ``channels`` from a correction table, asked of aiapy.

    Parameters
    ----------
    table : str, os.PathLike, astropy.table.Table, CorrectionTable or None
        The correction table (:func:`~intake_helio.calibrate.tables.correction_table`).
    channels : iterable of int, optional
        The channels (Å) needed (the frames' ``WAVELNTH``); None: every channel of the
        table.
    within : (time-like, time-like), optional
        The frames' first and last times: only the stretches within a day of them are asked
        of aiapy (~8 ms each); None: every stretch.

    Raises
    ------
    CalibrationError
        For a channel the table does not hold, or a table aiapy's factor cannot be
        followed on (see the module's notes).
    """
    ct = correction_table(table)
    calibrate = aiapy_calibrate()
    import astropy.units as u
    from astropy.time import Time

    column = ct.table["WAVELNTH"]
    waves = np.asarray(getattr(column, "value", column), dtype=np.float64)
    held = sorted({round(w) for w in waves if math.isfinite(w)})
    wanted = held if channels is None else sorted({_channel(c, held, ct) for c in channels})
    span = None
    if within is not None:
        lo, hi = _seconds(np.asarray(within, dtype="datetime64[ns]"))
        span = (float(lo) - _DAY, float(hi) + _DAY)
    edges, coeffs = [], []
    for channel in wanted:
        rows = np.flatnonzero(np.round(waves) == channel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # erfa: "dubious year" for epochs ending in 2030
            starts = _seconds(_datetimes(ct.table["T_START"][rows]))
            stops = _seconds(_datetimes(ct.table["T_STOP"][rows]))
        bounds = np.concatenate([starts, stops])
        e = np.unique(bounds[np.isfinite(bounds)])
        mid, half = (e[1:] + e[:-1]) / 2, (e[1:] - e[:-1]) / 2
        x = np.concatenate([_NODES, _CHECKS])
        at = mid[:, None] + half[:, None] * x[None, :]  # (stretches, 6)

        def aiapy_factors(t: np.ndarray, channel=channel) -> np.ndarray:
            with warnings.catch_warnings():  # erfa: "dubious year" for epochs ending in 2030
                warnings.filterwarnings("ignore", message=".*dubious year")
                when = Time(_from_seconds(t), scale="utc")
                got = calibrate.degradation(channel * u.angstrom, when, correction_table=ct.table)
            return np.asarray(got.to_value(u.dimensionless_unscaled), dtype=np.float64)

        co = np.full((len(mid), 4), np.nan)
        for i in range(len(mid)):
            if span is not None and (e[i + 1] < span[0] or e[i] > span[1]):
                continue  # no frame in this stretch
            try:
                f = aiapy_factors(at[i])
            except ValueError:  # no calibration epoch holds this stretch
                continue
            co[i] = chebyshev.chebfit(_NODES, f[:4], 3)
            check = chebyshev.chebval(_CHECKS, co[i])
            if not np.allclose(check, f[4:], rtol=CHECK_RTOL, atol=0):
                raise CalibrationError(
                    f"aiapy's degradation factor for {channel} Å is not one cubic between "
                    f"the bounds of {ct.source}'s epochs (checked {check} against {f[4:]}); "
                    "this aiapy is not supported by intake-helio's correction"
                )
        if span is None and not np.isfinite(co).any():
            raise CalibrationError(
                f"aiapy finds no calibration epoch for {channel} \N{ANGSTROM SIGN} in the "
                f"correction table {ct.source}; pass a table with this channel or "
                "correct_degradation=False"
            )
        edges.append(e)
        coeffs.append(co)
    return Degradation(tuple(wanted), tuple(edges), tuple(coeffs), ct.describe(), span)


def _channel(value: Any, held: list[int], ct: CorrectionTable) -> int:
    try:
        channel = round(float(value))
    except (TypeError, ValueError, OverflowError):
        channel = None
    if channel not in held:
        raise CalibrationError(
            f"channel {value!r} Å is not in the correction table {ct.source} (it holds "
            f"{', '.join(str(c) for c in held)} Å); pass a table with this channel or "
            "correct_degradation=False"
        )
    return channel


def _evaluate(edges: np.ndarray, coeffs: np.ndarray, t: np.ndarray) -> np.ndarray:
    i = np.searchsorted(edges, t, side="right") - 1  # the stretch [e_i, e_i+1) holding t
    inside = (i >= 0) & (i < len(edges) - 1) & np.isfinite(t)
    out = np.full(t.shape, np.nan)
    if not inside.any():
        return out
    j = i[inside]
    mid, half = (edges[j + 1] + edges[j]) / 2, (edges[j + 1] - edges[j]) / 2
    x = (t[inside] - mid) / half
    c = coeffs[j]
    # Clenshaw's recurrence of each time's own cubic (chebval of one row at a time)
    b2 = np.zeros_like(x)
    b1 = c[:, 3].copy()
    for k in (2, 1):
        b1, b2 = c[:, k] + 2 * x * b1 - b2, b1
    out[inside] = c[:, 0] + x * b1 - b2
    return out


def _seconds(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype="datetime64[ns]")
    out = t.astype(np.int64).astype(np.float64) / 1e9
    out[np.isnat(t)] = np.nan
    return out


def _from_seconds(s: np.ndarray) -> np.ndarray:
    return (np.asarray(s) * 1e9).astype(np.int64).astype("datetime64[ns]")


def _datetimes(column) -> np.ndarray:
    from astropy.time import Time

    t = column if isinstance(column, Time) else Time(column, scale="utc")
    return np.asarray(t.utc.datetime64, dtype="datetime64[ns]")


def _header_time(header: Mapping[str, Any]) -> np.datetime64 | None:
    for card in TIME_CARDS:
        value = header.get(card)
        if isinstance(value, str) and value.strip():
            text = value.strip().rstrip("Z")
            try:
                return np.datetime64(text, "ns")
            except ValueError:
                try:
                    import pandas as pd

                    return np.datetime64(pd.Timestamp(text).tz_localize(None), "ns")
                except (ValueError, TypeError):
                    continue
    return None
