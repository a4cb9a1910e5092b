"""The jobs' part store as tests look at it: saved parts, and parts of an older version.

``saved_parts`` reads the Zarr store's own record (``_resume/part_done``, one byte per
part, set after the part's data). ``write_legacy_parts`` lays out ``<out>/parts/`` exactly
as intake-helio wrote it before the Zarr store was the one part store (a manifest of the
run's identity, JSON with sorted keys indented by one space, and one CSV per part with the
columns of ``PART_COLUMNS``), so that ``--resume`` of such a run can be tested without the
old code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from intake_helio.app.tables import write_csv
from intake_helio.compute.reduction import PART_COLUMNS


def saved_parts(store: str | Path) -> list[int]:
    """The numbers of the parts saved in the Zarr store ``store`` (none while it is made)."""
    import zarr

    try:
        group = zarr.open_group(str(store), mode="r", zarr_format=2, use_consolidated=False)
        return [int(p) for p in np.flatnonzero(group["_resume/part_done"][:])]
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return []
    except Exception as exc:  # zarr's own "nothing there yet" errors
        if type(exc).__name__.endswith("NotFoundError"):
            return []
        raise


def store_identity(store: str | Path) -> dict:
    """The run's identity recorded in the Zarr store ``store``."""
    import zarr

    group = zarr.open_group(str(store), mode="r", zarr_format=2, use_consolidated=False)
    return dict(group["_resume"].attrs["identity"])


def legacy_identity(store: str | Path) -> dict:
    """The identity an older version wrote in its manifest for the run of ``store``."""
    return {k: v for k, v in store_identity(store).items() if k != "job"}


def write_legacy_parts(
    out: str | Path, identity: Mapping, parts: Mapping[int, pd.DataFrame]
) -> Path:
    """Write ``<out>/parts/`` as older versions did: ``manifest.json`` and the part CSVs."""
    directory = Path(out) / "parts"
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(identity), indent=1, sort_keys=True)
    (directory / "manifest.json").write_text(text)
    for number, df in parts.items():
        write_csv(df[PART_COLUMNS], directory / f"part-{number:06d}.csv")
    return directory


def result_parts(result: xr.Dataset, part_size: int) -> dict[int, pd.DataFrame]:
    """An irradiance result of one dataset cut into part tables, as older versions saved."""
    df = pd.DataFrame(
        {
            "time": result["time"].to_numpy(),
            "frame_time": result["frame_time"].to_numpy(),
            "datakey": result["datakey"].to_numpy().astype(str),
            "irradiance": result["irradiance"].to_numpy(),
            "n_valid": result["n_valid"].to_numpy(),
            "status": result["status"].to_numpy().astype(str),
        }
    )
    return {
        p: df.iloc[a : a + part_size].reset_index(drop=True)
        for p, a in enumerate(range(0, len(df), part_size))
    }
