"""Hostile rows 12 and 13 of ``benchmarks/hostile.py`` (issue 26: every request through one door).

12. an HTTP bucket (``LocalHTTP``, catalog, index and frames) whose datakeys answer ``302`` to a
    TCP listener that counts what it accepts, to the cloud metadata address, in a loop, on the
    same origin (followed) and to a second server in ``url-policy.allowed-hosts`` (followed,
    without the first origin's ``X-Api-Key``, a canary); index rows naming ``https://`` on
    the listener in internal spellings (``127.0.0.1``, ``0x7f.1``, ``2130706433``,
    ``127.1``, ``user@``, ``[::1]``, ``localhost``) and, with ``http://`` allowed on any host,
    this machine's host name when it resolves to a loopback address;
13. one writer and content as it comes: a second run on an ``--out`` whose lock a live
    process holds (refused naming the directory and the pid; the first run's result whole;
    ``--resume`` works), index lines with the wrong number of fields, a stop before its start
    and duplicate rows (bad rows listed, one frame per file), and a dataset title with
    U+202E and ANSI escapes (absent from reprs and ``intake-helio ls``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from faultkit import CANARY_SECRET, Row

#: Frames of the HTTP bucket of case 12.
FRAMES = 12


def case_redirects(ctx: Any, hk: Any) -> Row:
    """Row 12 (see the module's docstring)."""
    import dask

    import intake_helio as ih
    from intake_helio.testing.http_server import LocalHTTP, Redirect, SilentServer, loopback_name

    raws, means = hk.aia_frames(FRAMES)
    listener = SilentServer().start()
    port = int(listener.url.rsplit(":", 1)[1])
    mark = ctx.capture.mark()
    t0 = time.perf_counter()
    notes: list[str] = []
    lost = 0
    spellings = [
        f"https://127.0.0.1:{port}/a.fits",
        f"https://0x7f.1:{port}/b.fits",
        f"https://2130706433:{port}/c.fits",
        f"https://127.1:{port}/d.fits",
        f"https://user@127.0.0.1:{port}/e.fits",
        f"https://[::1]:{port}/f.fits",
        f"https://localhost:{port}/g.fits",
    ]
    shown: list[Any] = []
    with LocalHTTP() as web, LocalHTTP() as other:
        rows, expected = [], {}
        redirects = {
            2: Redirect(f"http://127.0.0.1:{port}/evil.fits"),
            3: Redirect("http://169.254.169.254/latest/meta-data/iam/"),
            4: Redirect("/loop/a"),
        }
        web.put("/loop/a", Redirect("/loop/b"))
        web.put("/loop/b", Redirect("/loop/a"))
        for i, raw in enumerate(raws):
            t = hk.START + pd.Timedelta(minutes=4 * i)
            path = f"/bkt/data/f{i}.fits"
            if i in redirects:
                web.put(path, redirects[i])
            elif i == 5:  # same origin: followed
                web.put("/bkt/moved/f5.fits", raw)
                web.put(path, Redirect("/bkt/moved/f5.fits"))
                expected[i] = means[i]
            elif i == 6:  # an allowed origin: followed, without the key
                other.put("/f6.fits", raw)
                web.put(path, Redirect(other.url + "/f6.fits"))
                expected[i] = means[i]
            else:
                web.put(path, raw)
                expected[i] = means[i]
            rows.append([hk.iso(t), hk.iso(t + pd.Timedelta("4min")), web.url + path, len(raw)])
        for j, url in enumerate(spellings):
            t = hk.START + pd.Timedelta(minutes=4 * (FRAMES + j))
            rows.append([hk.iso(t), hk.iso(t + pd.Timedelta("4min")), url, 2880])
        root = web.url + "/bkt/"
        web.put(
            "/bkt/catalog.json", hk.catalog_json(root, [hk.dataset_entry("aia", index="./idx/")])
        )
        web.put("/bkt/idx/aia_2020.csv", hk.index_csv(rows))
        so = {"http": {"headers": {"X-Api-Key": CANARY_SECRET}}}
        with dask.config.set(
            {"intake_helio.url-policy.allowed-hosts": [other.url], "scheduler": "threads"}
        ):
            bucket = ih.open_bucket(root, so, cache=False)
            frames = bucket["aia"].to_dataarray(
                hk.START, hk.START + pd.Timedelta("1D"), on_error="nan", index_errors="report"
            )
            result = ih.irradiance(frames, progress=False)
        status = result["status"].to_numpy().astype(str)
        keys = list(result["datakey"].to_numpy().astype(str))
        values = result["irradiance"].to_numpy()
        valued = sum(
            1
            for i, m in expected.items()
            if status[i] == "ok" and np.isclose(values[i], m, rtol=1e-9, atol=0)
        )
        reasons = sum(1 for i in redirects if status[i] == "URL not allowed")
        refused_rows = len(spellings) - sum(
            1 for u in spellings if u in keys and status[keys.index(u)] == "ok"
        )
        reasons += refused_rows
        lost += (
            len(expected)
            - valued
            + (len(redirects) - sum(status[i] == "URL not allowed" for i in redirects))
        )
        lost += len(spellings) - refused_rows
        leaked = sum(1 for r in other.requests if "x-api-key" in r.headers)
        sent = sum(1 for r in web.requests if r.headers.get("x-api-key") == CANARY_SECRET)
        lost += leaked + (sent == 0)  # control: the key was really sent to its own origin
        loops = sum(r.path.startswith("/loop/") for r in web.requests)
        notes.append(
            f"redirect hops refused {sum(status[i] == 'URL not allowed' for i in redirects)}/3, "
            f"loop stopped after {loops} hops, key sent to its origin {sent}x and to the other "
            f"{leaked}x, {refused_rows}/{len(spellings)} internal spellings refused"
        )
        shown += [result, result.attrs, list(status), bucket, frames.attrs]
        # a name that resolves to a loopback address, with http:// allowed on any host
        name = loopback_name()
        inject = len(redirects) + len(spellings)
        if name is not None:
            inject += 1
            index = hk.index_csv(
                [*rows[:2], [rows[2][0], rows[2][1], f"http://{name}:{port}/n.fits", 2880]]
            )
            web.put("/bkt/idx/aia_2020.csv", index)
            policy = {
                "intake_helio.url-policy.allowed-schemes": ["s3", "https", "http"],
                "scheduler": "threads",
            }
            with dask.config.set(policy):
                frames = ih.open_bucket(root, cache=False)["aia"].to_dataarray(
                    hk.START, hk.START + pd.Timedelta("1D"), on_error="nan"
                )
                res = ih.irradiance(frames, progress=False)
            st = res["status"].to_numpy().astype(str)
            named = st[2] == "URL not allowed"
            reasons += named
            lost += (not named) + int((st[:2] != "ok").sum())
            notes.append(f"host name {name!r} -> loopback: {'refused' if named else 'NOT refused'}")
        else:
            notes.append("host name check skipped (this machine's name is not loopback-only)")
    accepted = listener.accepted
    listener.stop()
    lost += accepted
    notes.append(f"listener accepted {accepted} connections")
    shown.append(ctx.capture.since(mark))
    return Row(
        "hostile: redirects, internal hosts",
        FRAMES + len(spellings),
        valued,
        reasons,
        inject,
        lost=lost,
        secrets=hk.secrets_in(*shown),
        seconds=time.perf_counter() - t0,
        note="; ".join(notes),
    )


_HOLDER = r"""
import sys, time
from intake_helio.app.lock import OutLock
with OutLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def case_writer_and_text(ctx: Any, hk: Any) -> Row:
    """Row 13 (see the module's docstring)."""
    import dask

    import intake_helio as ih

    t0 = time.perf_counter()
    mark = ctx.capture.mark()
    lost, reasons, inject, notes = 0, 0, 0, []
    shown: list[Any] = []
    # one writer: a live process holds the lock of --out
    demo = ctx.base
    so = ctx.options()
    out = Path(ctx.tmp) / "one-writer"
    out.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out), "60"], stdout=subprocess.PIPE, text=True
    )
    try:
        holder.stdout.readline()  # "held"
        inject += 1
        try:
            hk.job(ctx, demo.root, demo.dataset_id, out, so)
            lost += 1
            notes.append("second writer NOT refused")
        except Exception as exc:
            text = str(exc)
            named = str(out) in text and str(holder.pid) in text
            reasons += named
            lost += not named
            notes.append(
                f"second writer refused ({type(exc).__name__}, names dir and pid: {named})"
            )
            shown.append(text)
    finally:
        holder.kill()
        holder.wait()
    result, _ = hk.job(ctx, demo.root, demo.dataset_id, out, so)
    whole = int((result["status"].to_numpy().astype(str) == "ok").sum())
    again, _ = hk.job(ctx, demo.root, demo.dataset_id, out, so, resume=True)
    same = bool(
        np.allclose(again["irradiance"].to_numpy(), result["irradiance"].to_numpy(), equal_nan=True)
    )
    lost += (whole != len(demo.datakeys)) + (not same)
    notes.append(
        f"after the holder died: {whole}/{len(demo.datakeys)} valued, --resume same result: {same}"
    )
    # index lines: wrong field counts, stop before start, duplicates
    bad = ctx.demo("hostile-lines", 8, dataset_id="aia_lines")
    fs = ctx.s3.filesystem()
    index = ctx.index_path(bad)
    lines = fs.cat_file(index).decode().splitlines()
    row = lines[2].split(",")
    swapped = ",".join([row[1], row[0], *row[2:]])
    hostile_lines = [lines[1] + ",extra,fields,here", ",".join(row[:2]), swapped]
    body = [lines[0], *lines[1:], *hostile_lines, lines[3], lines[4]]  # + 2 duplicates
    fs.pipe_file(index, ("\n".join(body) + "\n").encode())
    inject += len(hostile_lines) + 2
    with dask.config.set(scheduler="threads"):
        import warnings

        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            ds = ih.open_bucket(bad.root, so, cache=False)[bad.dataset_id]
            frames = ds.to_dataarray(
                hk.START, hk.START + pd.Timedelta("1D"), on_error="nan", index_errors="report"
            )
            res = ih.irradiance(frames, progress=False)
    texts = " ".join(str(w.message) for w in warned)
    listed = texts.count("line ")
    import re

    found = re.search(r"dropped (\d+) exact duplicate", texts)
    dropped = int(found.group(1)) if found else 0
    good = int((res["status"].to_numpy().astype(str) == "ok").sum())
    vals = hk.values_right(res["irradiance"].to_numpy(), bad.expected_mean)
    reasons += min(listed, len(hostile_lines)) + min(dropped, 2)
    lost += (res.sizes["time"] != len(bad.datakeys)) + (len(bad.datakeys) - good) + vals
    lost += (listed < len(hostile_lines)) + (dropped != 2)
    notes.append(
        f"index: {res.sizes['time']} frames of {len(bad.datakeys)}, {good} valued, "
        f"{listed} bad lines listed, {dropped} duplicates dropped"
    )
    # a title with bidi overrides and escapes
    titled = ctx.demo("hostile-title", 4, dataset_id="aia_title")
    cat = f"{titled.root[5:]}catalog.json"
    import json

    obj = json.loads(fs.cat_file(cat))
    obj["catalog"][0]["title"] = "AIA \u202egnp.exe\u202c \x1b[31mRED\x1b[0m \x1b]0;pwn\x07 94"
    fs.pipe_file(cat, json.dumps(obj).encode())
    inject += 1
    b = ih.open_bucket(titled.root, so, cache=False)
    _, cout, cerr, _ = hk.cli(
        ["ls", titled.root, *hk.cred_args(), "--endpoint-url", ctx.s3.endpoint_url]
    )
    entry = b[titled.dataset_id]
    html = entry._repr_html_() if hasattr(entry, "_repr_html_") else ""
    seen = hk.shown_text(
        repr(b),
        str(b),
        repr(entry),
        html,
        cout,
        cerr,
    )
    bad_chars = sum(seen.count(c) for c in ("\u202e", "\u202c", "\x1b", "\x07"))
    ok_title = "gnp.exe" in cout
    reasons += bad_chars == 0
    lost += (bad_chars != 0) + (not ok_title)
    notes.append(f"title: {bad_chars} control/bidi characters shown, listed by ls: {ok_title}")
    shown.append(ctx.capture.since(mark))
    return Row(
        "hostile: one writer, lines, text",
        len(demo.datakeys) + len(bad.datakeys),
        whole + good,
        reasons,
        inject,
        lost=lost,
        secrets=hk.secrets_in(*shown),
        seconds=time.perf_counter() - t0,
        note="; ".join(notes),
    )
