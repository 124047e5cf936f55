"""``sweep.html``: the sweep's table (sortable by any column, with links to each run's report) and the
metric over the swept params (one panel per param, a heat map over the first two), self-contained."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from raytrade.backtest.report import format_value

_SORT_JS = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const asc = th.dataset.dir !== 'asc';
  document.querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = asc ? 'asc' : 'desc';
  const key = td => { const v = td.dataset.v; const n = parseFloat(v); return isNaN(n) ? v : n; };
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[col]), y = key(b.cells[col]);
    if (x === y) return 0;
    if (typeof x !== typeof y) return (typeof x === 'number' ? -1 : 1) * (asc ? 1 : -1);
    return (x < y ? -1 : 1) * (asc ? 1 : -1);
  }).forEach(r => body.appendChild(r));
}));
"""

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee;cursor:pointer}"
    "th[data-dir=asc]::after{content:' \\25B2'}th[data-dir=desc]::after{content:' \\25BC'}"
    "td.failed{color:#b00;text-align:left}img{max-width:100%}"
)


def param_columns(frame: pl.DataFrame) -> list[str]:
    """The swept strategy params (``<strategy>.<param>``)."""
    return [c for c in frame.columns if "." in c]


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def surface_plots(frame: pl.DataFrame, metric: str) -> list[tuple[str, str]]:
    """(caption, base64 PNG): the metric against each numeric param, and over the first two as a heat map."""
    ok = frame.filter(pl.col("status") == "ok") if "status" in frame.columns else frame
    if metric not in ok.columns or ok.height == 0:
        return []
    numeric = [c for c in param_columns(ok) if ok[c].dtype.is_numeric()]
    y = ok[metric].cast(pl.Float64).to_numpy()
    out: list[tuple[str, str]] = []
    if numeric:
        fig = Figure(figsize=(4.2 * len(numeric), 3.4), layout="constrained")
        axes = fig.subplots(1, len(numeric), squeeze=False)[0]
        for ax, col in zip(axes, numeric, strict=True):
            ax.scatter(ok[col].cast(pl.Float64).to_numpy(), y, s=22, alpha=0.75)
            ax.set_xlabel(col)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        out.append((f"{metric} against each swept parameter (every run)", _png(fig)))
    if len(numeric) >= 2:
        a, b = numeric[0], numeric[1]
        grid = ok.group_by(a, b).agg(pl.col(metric).cast(pl.Float64).mean()).sort(a, b)
        xs, ys = sorted(set(grid[a].to_list())), sorted(set(grid[b].to_list()))
        z = np.full((len(ys), len(xs)), np.nan)
        for va, vb, m in grid.iter_rows():
            z[ys.index(vb), xs.index(va)] = m
        fig = Figure(figsize=(6.5, 4.8), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(z, origin="lower", aspect="auto", cmap="RdYlGn")
        ax.set_xticks(range(len(xs)), [format_value(a, v) for v in xs])
        ax.set_yticks(range(len(ys)), [format_value(b, v) for v in ys])
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        for (i, j), m in np.ndenumerate(z):
            if np.isfinite(m):
                ax.text(j, i, f"{m:.3g}", ha="center", va="center", fontsize=8)
        fig.colorbar(im, ax=ax, label=f"mean {metric}")
        out.append((f"mean {metric} over {a} x {b} (other coordinates averaged)", _png(fig)))
    return out


def _cell(key: str, value: Any, run_id: str) -> str:
    if value is None:
        return '<td data-v=""></td>'
    if key == "run_id":
        link = html.escape(f"runs/{run_id}/report.html")
        return f'<td data-v="{html.escape(run_id)}"><a href="{link}">{html.escape(run_id)}</a></td>'
    if key == "error":
        return f'<td class="failed" data-v="{html.escape(str(value))}">{html.escape(str(value))}</td>'
    shown = format_value(key, value) if isinstance(value, int | float) else str(value)
    return f'<td data-v="{html.escape(str(value))}">{html.escape(shown)}</td>'


def write_sweep_html(path: Path, frame: pl.DataFrame, figures: dict[str, Any], metric: str, title: str) -> None:
    """The sweep's page: figures, plots, and the table sorted by ``metric`` (best first)."""
    if metric in frame.columns:
        frame = frame.sort(metric, descending=True, nulls_last=True)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(_cell(k, v, str(row["run_id"])) for k, v in row.items()) + "</tr>"
        for row in frame.iter_rows(named=True)
    )
    plots = "".join(
        f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{img}'><figcaption>{html.escape(cap)}"
        "</figcaption></figure>"
        for cap, img in surface_plots(frame, metric)
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<pre id='figures'>{html.escape(json.dumps(figures, indent=2, sort_keys=True))}</pre>{plots}"
        f"<p>Click a column to sort. Sorted by {html.escape(metric)}, best first.</p>"
        f"<table id='runs'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<script>{_SORT_JS}</script></body></html>"
    )
    path.write_text(page)
