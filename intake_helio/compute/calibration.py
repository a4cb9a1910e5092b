"""The engine's keywords for aiapy's corrections: which factor each frame is divided by.

``correct_degradation=True`` (with ``correction_table``) on
:func:`~intake_helio.irradiance`, :func:`~intake_helio.map_frames` and the job becomes a
:class:`~intake_helio.calibrate.Degradation` of the frames' channel
(:func:`correction_for`), built once on the client and carried by every read task: each
frame's pixels are divided by its factor (after ``EXPTIME`` for DN/s), so every output
linear in the pixels (means, sums, extremes, percentiles, a function's data) is corrected
and counts are not. :func:`corrected_units` and :func:`correction_attrs` say in the
results what was applied.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import xarray as xr

from ..base.errors import ArgumentTypeError
from ..calibrate import CorrectionTable, Degradation, correction_table, degradation_model

__all__ = ["CORRECTED", "corrected_units", "correction_attrs", "correction_for", "table_for"]

#: What the ``units`` of a degradation-corrected result add to the frames' units.
CORRECTED = "corrected for degradation"


def table_for(correct_degradation: Any, table: Any) -> CorrectionTable | None:
    """The correction table once for all channels (None: no correction asked).

    Raises
    ------
    ArgumentTypeError
        ``correct_degradation`` is not a bool.
    MissingAiapyError, CalibrationError
        Without aiapy, or for a table that cannot be used (one line each).
    """
    if not isinstance(correct_degradation, bool):
        raise ArgumentTypeError(
            f"correct_degradation={correct_degradation!r}; expected True or False"
        )
    if not correct_degradation:
        if table is not None:
            raise ArgumentTypeError(
                f"correction_table={str(table)[:80]!r} is given but correct_degradation=False; "
                "pass correct_degradation=True (--correct-degradation) to apply it"
            )
        return None
    return correction_table(table)


def correction_for(frames: xr.DataArray, table: CorrectionTable | None) -> Degradation | None:
    """The degradation factors of ``frames``' channel (its ``WAVELNTH``; none known: every
    channel of the table) over the frames' times, or None without a table.

    Models are kept per table, channel and day range (a notebook's second call over the
    same frames asks nothing of aiapy again).
    """
    if table is None:
        return None
    wave = frames.attrs.get("WAVELNTH")
    within = None
    name = "frame_time" if "frame_time" in frames.coords else "time"
    if name in frames.coords and frames.sizes.get("time", 0):
        t = pd.DatetimeIndex(frames[name].to_numpy()).dropna()
        if len(t):
            within = (t.min().floor("D").to_datetime64(), t.max().ceil("D").to_datetime64())
    key = (table.describe(), wave, None if within is None else tuple(map(str, within)))
    model = _MODELS.get(key)
    if model is None:
        model = degradation_model(table, None if wave is None else [wave], within)
        if len(_MODELS) >= 64:
            _MODELS.clear()
        _MODELS[key] = model
    return model


#: Degradation models made in this process, by table, channel and day range.
_MODELS: dict[tuple, Degradation] = {}


def corrected_units(units: str, correction: Degradation | None) -> str:
    """``units`` as computed with ``correction``: ``"DN/s, corrected for degradation"``."""
    return units if correction is None else f"{units}, {CORRECTED}"


def correction_attrs(correction: Degradation | None) -> dict[str, str]:
    """The result attributes that record the correction (its table and aiapy's version)."""
    if correction is None:
        return {}
    return {
        "calibration": "aiapy.calibrate.degradation (the correct_degradation factor)",
        "correction_table": correction.table,
    }
