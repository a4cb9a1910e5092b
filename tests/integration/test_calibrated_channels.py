"""Degradation correction of several channels (each its own factors) and of aiapy's
default source when the network is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import intake_helio as ih
from intake_helio.testing.demo_data import write_demo_dataset

aiapy = pytest.importorskip("aiapy")
TABLE = Path(aiapy.__file__).parent / "tests" / "data" / "aia_V8_20171210_050627_response_table.txt"
N = 4


def test_each_channel_gets_its_own_factors(s3):
    import astropy.units as u
    from aiapy.calibrate import degradation
    from aiapy.calibrate.util import get_correction_table
    from astropy.time import Time

    so = s3.storage_options
    a = write_demo_dataset("s3://helio-demo/", so, frames=N, size=32, corrupt=0)
    write_demo_dataset(
        "s3://helio-demo/", so, frames=N, size=32, corrupt=0, dataset_id="aia_0171",
        start=a.start + pd.Timedelta(seconds=3), seed=7, wavelength=171,
    )  # fmt: skip
    bucket = ih.open_bucket("s3://helio-demo/", so)
    ds = ih.open_channels(bucket, ["aia_0094", "aia_0171"], a.start, a.stop, tolerance="6s")
    plain = ih.irradiance(ds, normalize=True, progress=False)
    fixed = ih.irradiance(
        ds, normalize=True, progress=False, correct_degradation=True, correction_table=TABLE
    )
    assert (fixed["status"].values == "ok").all()
    assert fixed["irradiance"].attrs["units"] == "DN/s, corrected for degradation"
    assert TABLE.name in fixed.attrs["correction_table"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = get_correction_table(TABLE)
        for c, (name, wave) in enumerate((("aia_0094", 94), ("aia_0171", 171))):
            times = Time(pd.DatetimeIndex(fixed["frame_time"].values[c]).to_pydatetime())
            want = degradation(wave * u.angstrom, times, correction_table=tab).value
            got = plain["irradiance"].values[c] / fixed["irradiance"].values[c]
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    ratio = plain["irradiance"].values / fixed["irradiance"].values
    assert abs(ratio[0, 0] - ratio[1, 0]) > 0.01  # 94 and 171 lost different amounts


def test_the_default_source_unreachable_says_to_pass_a_file():
    # every request of the child goes to a proxy on a closed port: JSOC is unreachable
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "NO_PROXY": "", "no_proxy": ""}
    env.update({k: dead for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")})
    code = "from intake_helio.compute.calibration import table_for; table_for(True, None)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "CalibrationError" in last and "cannot fetch" in last and "JSOC" in last
    assert "pass correction_table= a local aia_V*_response_table.txt file" in last
