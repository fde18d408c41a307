"""What every HTML page of :mod:`earshot.reports` shares: the style sheet, inline images, anchors
and writing a page with its JSON.

Pages are self-contained (images as base64 PNG data URIs, the CSS inline) and written whole or
not at all: JSON first, then HTML, each to a temporary name renamed when complete.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from earshot._util.fs import atomic_file
from earshot.errors import ParameterError

__all__ = ["CSS", "b64_png", "file_slug", "report_folder", "slug", "write_page"]

#: The style sheet of the evaluation, cross-validation and comparison pages.
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2.2em}
h3{margin-top:1.6em}
table{border-collapse:collapse;font-size:.88em;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.name,th.name{text-align:left}td.text{text-align:left;font-size:.92em}
tr.summary td{background:#f7f7f7;font-weight:600}
img{max-width:100%;display:block;margin:.6em 0}
.missing{color:#a04000}.meta{color:#555}code{background:#f4f4f4;padding:0 .2em;word-break:break-all}
nav ul{columns:2;font-size:.92em}.pair{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.pair figure{margin:0;flex:1 1 420px}figcaption{font-size:.88em;color:#444}
"""


def b64_png(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def slug(group: str) -> str:
    """A group name as an HTML anchor of the evaluation page (``fan/id_00`` -> ``fan-id_00``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", group).strip("-") or "group"


def file_slug(group: str) -> str:
    """A group name as the exploration page's file-name prefix and anchor (``fan/id_00`` -> ``fan_id_00``).

    Not :func:`slug`: the PNG files of ``earshot explore`` have been named this way from the start.
    """
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in group).strip("._")
    return out or "group"


def report_folder(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path, refused (one line) when it is a file: check it before rendering."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--report {out}: expected a folder, got a file")
    return out


def write_page(out: Path, stem: str, page: str, text: str) -> Path:
    """Write ``out/<stem>.json`` then ``out/<stem>.html``, each complete or not at all; return the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / f"{stem}.json", encoding="utf-8") as fh:
        fh.write(text)
    with atomic_file(out / f"{stem}.html", encoding="utf-8") as fh:
        fh.write(page)
    return out / f"{stem}.html"
