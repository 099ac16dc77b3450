"""The report's HTML page: Vega inlined, one view per chart, each table summarised, the column dictionary."""

from __future__ import annotations

import functools
import hashlib
import html
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from . import __version__
from ._files import atomic_write

__all__ = ["page", "vega_bundle"]

_PREVIEW_ROWS = 60


@functools.lru_cache(maxsize=2)
def vega_bundle(vl_version: str) -> str:
    """Vega, Vega-Lite and vega-embed as one script, and the few lines that draw every chart of the page.

    Bundling takes seconds, so the bundle is cached on disk beside the sandbox cache.
    """
    import vl_convert

    snippet = _EMBED_JS
    from importlib.metadata import version

    key = hashlib.sha256(f"{version('vl-convert-python')}|{vl_version}|{snippet}".encode()).hexdigest()[:16]
    from .sim.sandbox import cache_dir

    cached = cache_dir() / "vega" / f"bundle-{key}.js"
    try:
        return cached.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle: str = vl_convert.javascript_bundle(snippet, vl_version=vl_version)
    try:
        with atomic_write(cached, "w") as handle:
            handle.write(bundle)
    except OSError:
        pass  # a read-only cache: bundle again next time
    return bundle


_EMBED_JS = """
const specs = JSON.parse(document.getElementById("meshlab-specs").textContent);
for (const [id, spec] of Object.entries(specs)) {
  const box = document.getElementById(id);
  vegaEmbed(box, spec, {renderer: "svg", actions: {export: true, source: false, compiled: false, editor: false}})
    .then(() => box.setAttribute("data-rendered", "true"))
    .catch((error) => { box.textContent = "This chart could not be drawn: " + error; console.error(error); });
}
"""

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#fff}
header{background:#17324d;color:#fff;padding:22px 32px}header h1{margin:0 0 4px;font-size:26px}
header p{margin:2px 0;opacity:.9}header code{background:#2c4c6e;color:#fff}main{padding:8px 32px 40px;max-width:1400px}
h2{border-bottom:2px solid #e3e8ef;padding-bottom:4px;margin-top:32px}
nav ul{columns:2;padding-left:18px}figure{margin:18px 0 28px}figcaption{font-weight:600;margin-bottom:6px}
.chart{overflow-x:auto}table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
th,td{border-bottom:1px solid #e3e8ef;padding:3px 9px;text-align:right;white-space:nowrap}
th{background:#f4f6f9;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
.scroll{max-height:420px;overflow:auto;border:1px solid #e3e8ef;display:inline-block;max-width:100%}
.meta{color:#5b6675;font-size:13px}.warn{color:#8a4b00}code{background:#f4f6f9;padding:1px 4px;border-radius:3px}
"""


def _summary(frame: pd.DataFrame, kind: str | None) -> tuple[pd.DataFrame, str]:
    """What the page shows of a table: per series over the whole range when it is a time series, else its rows."""
    labels = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype) and c != "kind"]
    metrics = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c].dtype)]
    if "timestamp" in frame.columns and labels and metrics and kind not in ("benchmark", "comparison"):
        grouped = frame.groupby(labels, observed=True, sort=True)
        sums = [c for c in metrics if c.endswith("_count") or c in ("requests", "opened_connections")]
        out = grouped[metrics].mean()
        if sums:
            out[sums] = grouped[sums].sum()
        if {"success_rate", "success_count", "requests"} <= set(metrics):
            totals = grouped[["success_count", "requests"]].sum()
            out["success_rate"] = totals["success_count"] / totals["requests"]
        out = out.reset_index()
        rate = ", the success rate from the summed counts" if "success_rate" in out.columns else ""
        note = (f"{len(out)} series over the whole range: counts summed{rate}, every other column the mean of "
                "its windows")
    else:
        out, note = frame, "the rows"
    if len(out) > _PREVIEW_ROWS:
        note += f"; the first {_PREVIEW_ROWS} of {len(out)} shown"
        out = out.head(_PREVIEW_ROWS)
    return out, note


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:.4g}"  # 170,000 reads better than 1.7e+05
    if isinstance(value, pd.Timestamp):
        return "" if pd.isna(value) else value.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S") \
            if value.tzinfo else value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None or value is pd.NA or value is pd.NaT else str(value)


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _span(frame: pd.DataFrame) -> str:
    if "timestamp" not in frame.columns or not len(frame) or frame["timestamp"].isna().all():
        return ""
    times = pd.to_datetime(frame["timestamp"], utc=True)
    return f"; {times.min():%Y-%m-%d %H:%M} to {times.max():%Y-%m-%d %H:%M} UTC"


def page(title: str, description: str | None, created: pd.Timestamp, tables: Mapping[str, pd.DataFrame],
          kinds: Mapping[str, str | None], specs: list[tuple[str, dict[str, Any]]], problems: list[str],
          dictionary: pd.DataFrame, bundle: str) -> str:
    from .schema import FRAMES

    esc = html.escape
    parts = [f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f'<meta name="generator" content="meshlab {esc(__version__)}">'
             f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
             f"<header><h1>{esc(title)}</h1>"
             + (f"<p>{esc(description)}</p>" if description else "")
             + f"<p>Written {created:%Y-%m-%d %H:%M} UTC by meshlab {esc(__version__)}: {len(specs)} charts, "
               f"{len(tables)} tables. Every table is also in this folder as CSV and Parquet; "
               f"<code>columns.csv</code> describes every column.</p></header><main>"]
    parts.append("<nav><h2>Contents</h2><ul>"
                 + "".join(f'<li><a href="#chart-{i}">{esc(t)}</a></li>' for i, (t, _) in enumerate(specs))
                 + "".join(f'<li><a href="#table-{esc(n)}">table: {esc(n)}</a></li>' for n in tables)
                 + '<li><a href="#columns">the columns</a></li></ul></nav>')
    if specs or problems:
        parts.append("<h2>Charts</h2>")
    for i, (chart_title, _) in enumerate(specs):
        parts.append(f'<figure><figcaption>{esc(chart_title)}</figcaption>'
                     f'<div class="chart" id="chart-{i}"></div></figure>')
    for problem in problems:
        parts.append(f'<p class="warn">Not drawn: {esc(problem)}</p>')
    parts.append("<h2>Tables</h2>")
    for name, frame in tables.items():
        kind = kinds[name]
        spec = FRAMES.get(kind or "")
        shown, note = _summary(frame, kind)
        parts.append(f'<section id="table-{esc(name)}"><h3>{esc(name)}</h3>'
                     + (f"<p>{esc(spec.doc)}</p>" if spec else "")
                     + f'<p class="meta">{len(frame):,} rows, {frame.shape[1]} columns{esc(_span(frame))}; '
                       f'files: <a href="{esc(name)}.csv">{esc(name)}.csv</a>, '
                       f'<a href="{esc(name)}.parquet">{esc(name)}.parquet</a>. Below: {esc(note)}.</p>'
                     + _table_html(shown) + "</section>")
    parts.append('<h2 id="columns">The columns</h2><p>Also in <a href="columns.csv">columns.csv</a>. '
                 "Timestamps are UTC; units are in the column names.</p>" + _table_html(dictionary))
    # "</" inside a script element would end it; JSON allows "\/" for "/"
    payload = json.dumps({f"chart-{i}": spec for i, (_, spec) in enumerate(specs)}, separators=(",", ":"))
    payload = payload.replace("</", "<\\/").replace("<!--", "<\\u0021--")
    script = bundle.replace("</script", "<\\/script")
    parts.append(f'</main><script type="application/json" id="meshlab-specs">{payload}</script>'
                 f'<script type="module">{script}</script></body></html>\n')
    return "".join(parts)
