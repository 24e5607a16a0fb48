"""One self-contained ``report.html`` per folder: PNGs inline, a summary table, the config.

Nothing outside the file is referenced: every image is a ``data:image/png;base64`` URI, the
style sheet is inline, and every text taken from a folder (config, table cells, titles) is
HTML-escaped, so the page opens the same anywhere, offline, and cannot run what a folder
holds.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from .report_common import HTML
from .rundir import atomic_write

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 1em 0; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An escaped HTML table (floats to 6 significant digits, None empty)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.stem)
    return f'<h3>{html.escape(path.name)}</h3><img alt="{alt}" src="data:image/png;base64,{data}">'


def write_html(
    folder: Path,
    *,
    title: str,
    subtitle: str,
    tables: Sequence[tuple[str, str]],
    images: Sequence[Path],
    config_text: str,
) -> Path:
    """Write ``folder/report.html`` and return its path.

    Args:
        folder: the run, sweep, auction or offline folder.
        title: the page title (the folder's name).
        subtitle: the key config line (``report_common.headline``).
        tables: ``(heading, html_table(...))`` pairs, shown before the figures.
        images: PNG files, inlined as data URIs in this order.
        config_text: the folder's config (TOML or JSON text), shown escaped.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>",
    ]
    for heading, table in tables:
        parts.append(f"<h2>{html.escape(heading)}</h2>{table}")
    parts.append("<h2>Figures</h2>")
    parts += [_image(p) for p in images]
    parts.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")
    parts.append("</body></html>\n")
    path = folder / HTML
    atomic_write(path, "\n".join(parts))
    return path
