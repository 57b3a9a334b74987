"""A self-contained HTML report: sections of prose, tables of numbers and PNG figures.

The page has no external resource: figures are PNG images (matplotlib, Agg) embedded as
``data:`` URIs, the style sheet is inline, so the file can be mailed or archived alone.
Every table is also kept as plain data (:meth:`Report.tables`) so the numbers shown can be
written next to the page (``report.json``) and checked against the saved results.

    rep = Report("spikessm demo")
    sec = rep.section("Poisson LDS", "What was fitted and how it was judged.")
    sec.table([{"model": "Poisson LDS", "held-out LL": -1234.5}], caption="Held-out scores")
    sec.figure(fig, caption="Latent trajectories")
    rep.write(out_dir / "report.html")
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..io import atomic_write

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;
 color:#1d2330;background:#fafbfc;line-height:1.45}
header{background:#1f3b5b;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:1.6em} header p{margin:4px 0 0;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border:1px solid #e1e5ea;border-radius:6px;margin:20px 0;
 padding:6px 20px 16px}
h2{color:#1f3b5b;border-bottom:1px solid #e1e5ea;padding-bottom:4px}
table{border-collapse:collapse;margin:10px 0;font-size:.92em}
th,td{border:1px solid #d5dae0;padding:4px 10px;text-align:right}
th{background:#eef2f6} td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
figure{margin:14px 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;border:1px solid #e1e5ea}
figcaption{font-size:.9em;color:#4a5563}
nav a{margin-right:14px;color:#1f3b5b}
footer{color:#6b7480;font-size:.85em;text-align:center;padding:16px}
"""


def format_value(v) -> str:
    """How a number appears in a table: integers as such, floats with 6 significant
    digits (the JSON copy keeps full precision)."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "n/a"
        return f"{v:.6g}"
    return str(v)


def _plain(v):
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        v = float(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def figure_png(fig, dpi: int = 90) -> bytes:
    """Render a matplotlib Figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


@dataclass
class Section:
    """One titled part of the report; items are rendered in the order added."""

    title: str
    items: list = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        self.items.append(("text", str(paragraph)))
        return self

    def table(self, rows: list[dict], *, caption: str = "", key: str | None = None) -> Section:
        """rows: list of dicts with the same keys (the columns, in order of the first row).
        ``key`` names the table in :meth:`Report.tables` (default: the caption)."""
        if not rows:
            raise ValueError("rows must contain at least one row")
        cols = list(rows[0])
        for r in rows:
            if list(r) != cols:
                raise ValueError(f"every row must have the columns {cols}, got {list(r)}")
        self.items.append(("table", {"caption": caption, "key": key or caption or self.title,
                                     "columns": cols,
                                     "rows": [[_plain(r[c]) for c in cols] for r in rows]}))
        return self

    def figure(self, fig, *, caption: str = "", dpi: int = 90) -> Section:
        self.items.append(("figure", (figure_png(fig, dpi), caption)))
        return self


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list = field(default_factory=list)

    def section(self, title: str, text: str | None = None) -> Section:
        sec = Section(title)
        if text:
            sec.text(text)
        self.sections.append(sec)
        return sec

    def tables(self) -> dict:
        """{key: {"columns": [...], "rows": [[...], ...]}} of every table (full precision)."""
        out = {}
        for sec in self.sections:
            for kind, item in sec.items:
                if kind == "table":
                    out[item["key"]] = {"columns": item["columns"], "rows": item["rows"]}
        return out

    def n_figures(self) -> int:
        return sum(kind == "figure" for sec in self.sections for kind, _ in sec.items)

    def render(self) -> str:
        esc = html.escape
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>{esc(self.title)}</title>",
                 '<meta name="viewport" content="width=device-width, initial-scale=1">',
                 f"<style>{STYLE}</style></head><body>",
                 f"<header><h1>{esc(self.title)}</h1><p>{esc(self.subtitle)}</p></header>",
                 "<main><nav>"]
        parts += [f'<a href="#s{i}">{esc(s.title)}</a>' for i, s in enumerate(self.sections)]
        parts.append("</nav>")
        for i, sec in enumerate(self.sections):
            parts.append(f'<section id="s{i}"><h2>{esc(sec.title)}</h2>')
            for kind, item in sec.items:
                if kind == "text":
                    parts.append(f"<p>{esc(item)}</p>")
                elif kind == "table":
                    parts.append(f'<table data-key="{esc(item["key"])}">')
                    if item["caption"]:
                        parts.append(f"<caption>{esc(item['caption'])}</caption>")
                    parts.append("<tr>" + "".join(f"<th>{esc(str(c))}</th>"
                                                  for c in item["columns"]) + "</tr>")
                    for row in item["rows"]:
                        parts.append("<tr>" + "".join(
                            f"<td>{esc(format_value(float('nan') if v is None else v))}</td>"
                            for v in row) + "</tr>")
                    parts.append("</table>")
                else:
                    png, caption = item
                    b64 = base64.b64encode(png).decode("ascii")
                    parts.append(f'<figure><img alt="{esc(caption)}" '
                                 f'src="data:image/png;base64,{b64}">'
                                 f"<figcaption>{esc(caption)}</figcaption></figure>")
            parts.append("</section>")
        parts.append(f"</main><footer>spikessm {esc(__version__)} &middot; {stamp}</footer>"
                     "</body></html>")
        return "\n".join(parts)

    def write(self, path) -> Path:
        """Write the page and, beside it, ``<stem>.json`` with every table at full
        precision. Both are written atomically (a temporary file in the same folder,
        then renamed), so an interrupted run leaves no half-written file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.render().encode("utf-8"))
        meta = {"title": self.title, "spikessm_version": __version__, "tables": self.tables(),
                "n_figures": self.n_figures()}
        atomic_write(path.with_suffix(".json"),
                     json.dumps(meta, indent=1, allow_nan=False).encode("utf-8"))
        return path
