"""Notebook and plain reprs of registries, buckets and datasets.

Catalog text is third-party content: every value is HTML-escaped here, URLs have their
credentials masked (:func:`~intake_helio.io.storage.mask_url`) and other values pass
:func:`~intake_helio.io.storage.redact`; long values are cut.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ..io.storage import redact, shown

__all__ = ["bucket_html", "dataset_html", "listing", "registry_html"]

LIST_LIMIT = 10  # names shown in a plain repr before "... (N more)"
HTML_ROWS = 200  # rows of an HTML table before "... N more"


def listing(names: Sequence[str], limit: int = LIST_LIMIT) -> str:
    """``": a, b, c"``, or ``": a, ..., j, ... (N more)"`` past ``limit`` names; ``""`` if none."""
    if not names:
        return ""
    head = ", ".join(shown(n, 80) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f": {head}{more}"


def _e(value: Any, limit: int = 200) -> str:
    """``value`` made safe for HTML: credentials masked, control characters removed, cut."""
    if isinstance(value, pd.Timestamp):
        return html.escape(value.isoformat())
    return html.escape(shown(redact(value), limit))


def _table(header: Iterable[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    total = len(rows) if total is None else total
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{cell}</td>" for cell in row) + "</tr>"
        for row in rows[:HTML_ROWS]
    )
    more = f"<p>... {total - HTML_ROWS} more</p>" if total > HTML_ROWS else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _skipped(invalid: dict) -> str:
    if not invalid:
        return ""
    items = "".join(f"<li>{_e(k, 80)}: {_e(v, 300)}</li>" for k, v in list(invalid.items())[:20])
    return f"<details><summary>{len(invalid)} skipped</summary><ul>{items}</ul></details>"


def registry_html(reg: Any) -> str:
    """A registry: its URL and a table of its endpoints (name, endpoint, region, provider)."""
    rows = [
        (_e(e.name), f"<code>{_e(e.endpoint)}</code>", _e(e.region or ""), _e(e.provider or ""))
        for e in reg.endpoints
    ]
    title = (
        f"<b>Registry</b> <code>{_e(reg.url)}</code> (version {_e(reg.version, 40)}; "
        f"{len(reg.endpoints)} endpoints"
        + (f"; modified {_e(reg.modification_date, 60)}" if reg.modification_date else "")
        + ")"
    )
    table = _table(("name", "endpoint", "region", "provider"), rows)
    return f"<div>{title}{table}{_skipped(reg.invalid)}</div>"


def bucket_html(bucket: Any) -> str:
    """A bucket: name, endpoint, status and a table of datasets (id, title, start, stop,
    filetype, what intake-helio opens it as)."""
    rows = [
        (
            f"<code>{_e(d.id)}</code>",
            _e(d.title),
            _e(d.start),
            _e(d.stop),
            _e(d.filetype, 80),
            _e(d.opens_as or "-"),
        )
        for d in bucket.datasets.values()
    ]
    status = bucket.status.get("message", "")
    title = (
        f"<b>Bucket</b> {_e(bucket.name)} <code>{_e(bucket.endpoint)}</code> "
        f"({len(bucket)} datasets" + (f"; status {_e(status, 100)}" if status else "") + ")"
    )
    table = _table(("id", "title", "start", "stop", "filetype", "opens as"), rows)
    return f"<div>{title}{table}{_skipped(bucket.invalid)}</div>"


def _years(years: Sequence[int]) -> str:
    if not years:
        return "none"
    if len(years) > 2 and list(years) == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]} ({len(years)} files at most)"
    return ", ".join(map(str, years))


def dataset_html(ds: Any) -> str:
    """A dataset: its fields, its index years and the other keys of its catalog entry."""
    fields = [
        ("id", f"<code>{_e(ds.id)}</code>"),
        ("title", _e(ds.title)),
        ("start", _e(ds.start)),
        ("stop", _e(ds.stop)),
        ("filetype", _e(ds.filetype)),
        ("opens as", _e(ds.opens_as or "not opened by intake-helio (files listed)")),
        ("indextype", _e(ds.indextype)),
        ("multiyear", _e(ds.multiyear)),
        ("index", f"<code>{_e(ds.index)}</code>"),
        ("index years", _e(_years(ds.index_years))),
        ("endpoint", f"<code>{_e(ds.endpoint)}</code>"),
    ]
    fields += [(_e(k, 80), _e(v, 300)) for k, v in list(ds.metadata.items())[:50]]
    rows = [(f"<b>{k}</b>", v) for k, v in fields]
    return f"<div><b>Dataset</b> <code>{_e(ds.id)}</code>{_table(('field', 'value'), rows)}</div>"
