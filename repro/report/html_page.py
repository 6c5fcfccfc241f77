"""paper_artifacts/<config>/index.html: one static page per config (no server, no JavaScript).

It shows every table (as HTML, with links to its Markdown / CSV / LaTeX files) and every figure (the PNG,
with links to the PDF and CSV data), each with the number of stored results behind it; the config (name,
hash, full text); the provenance summary over all results (package versions, checkpoint revisions or the
generated world); the Table 1 cells that are incomplete; and what could not be rendered yet. The page
opens from the file system (relative links only) and is byte-identical for the same results.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.report.artifacts import Artifact

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td, th:first-child { text-align: left; } td.num { text-align: right; }
img { max-width: 100%; border: 1px solid #eee; }
.meta { color: #555; font-size: 0.85em; } .warn { color: #a00; }
pre { background: #f7f7f7; padding: 0.5em; font-size: 0.75em; overflow-x: auto; }
nav a { margin-right: 0.8em; font-size: 0.85em; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


_NUM = ' class="num"'


def _numeric(cell) -> bool:
    """Numbers (and cells such as "17 / -4.21" or "–") align right; names and descriptions align left."""
    return bool(re.match(r"^\s*(?:[-+−–]?\d|–\s*$)", str(cell)))


def _table_html(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{_NUM if _numeric(c) else ''}>{_e(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _links(artifact: Artifact) -> str:
    return " · ".join(f'<a href="{_e(p.name)}">{_e(p.suffix[1:].upper())}</a>' for p in artifact.files)


def _section(artifact: Artifact, config_name: str) -> str:
    count = (f"{artifact.n_results} stored result(s)" if artifact.n_results
             else "protocol data (config, lockfile, suites file), no results needed")
    parts = [f'<h2 id="{_e(artifact.key)}">{_e(artifact.title)}</h2>',
             f'<p class="meta">config <code>{_e(config_name)}</code> · {count} · files: {_links(artifact)}</p>']
    if artifact.table is not None:
        parts.append(_table_html(*artifact.table))
    png = next((p for p in artifact.files if p.suffix == ".png"), None)
    if png is not None:
        parts.append(f'<p><img src="{_e(png.name)}" alt="{_e(artifact.title)}"></p>')
    parts += [f'<p class="meta">{_e(note)}</p>' for note in artifact.notes]
    return "\n".join(parts)


def page_html(loaded, artifacts: list[Artifact], skipped: list[str], incomplete: list[str], records: dict,
              prov: dict) -> str:
    """The page; `prov` is the provenance summary over `records` (repro.report.render_all.provenance)."""
    config_text = loaded.path.read_text(encoding="utf-8")
    nav = "".join(f'<a href="#{_e(a.key)}">{_e(a.key)}</a>' for a in artifacts)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>repro: {_e(loaded.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>In-the-wild model merging: tables and figures of <code>{_e(loaded.name)}</code></h1>",
        f'<p class="meta">{_e(loaded.config.description)}<br>config <code>{_e(loaded.path.name)}</code>, '
        f"sha256 <code>{_e(loaded.config_hash[:16])}</code> · {len(records)} stored result(s) · "
        f"{len(artifacts)} table(s)/figure(s) rendered from stored results only</p>",
        f"<nav>{nav}</nav>",
        "<h2 id=\"incomplete\">Incomplete Table 1 cells</h2>",
    ]
    if incomplete:
        parts.append('<ul class="warn">' + "".join(f"<li>{_e(c)}</li>" for c in incomplete) + "</ul>")
    else:
        parts.append("<p>None: every planned Table 1 result is present (or the config has no Table 1).</p>")
    if skipped:
        parts.append("<h2 id=\"not-rendered\">Not rendered (no results yet or not part of this config)</h2><ul>"
                     + "".join(f"<li>{_e(s)}</li>" for s in skipped) + "</ul>")
    parts += [_section(a, loaded.name) for a in artifacts]
    parts.append('<h2 id="provenance">Provenance summary (over all stored results)</h2>')
    parts.append(_table_html(["package", "version(s)"], [[k, ", ".join(v)] for k, v in prov["packages"].items()]))
    if prov["checkpoints"]:
        parts.append(_table_html(["checkpoint", "revision(s)"],
                                 [[k, ", ".join(v)] for k, v in prov["checkpoints"].items()]))
    for world in prov["worlds"]:
        parts.append(f"<p>Generated offline world: <code>{_e(world)}</code></p>")
    parts.append(f'<p class="meta">config hash(es) recorded in the results: '
                 f"{_e(', '.join(prov['config_hashes']) or 'none')}</p>")
    parts.append(f'<h2 id="config">Config <code>{_e(loaded.path.name)}</code></h2><pre>{_e(config_text)}</pre>')
    parts.append(f'<p class="meta">manifest: <a href="manifest.json">manifest.json</a> · '
                 f'<code>{_e(json.dumps({"artifacts": len(artifacts)}))}</code></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_page(loaded, artifacts, skipped, incomplete, records, prov: dict, out_dir: Path) -> Path:
    return atomic_write_text(Path(out_dir) / "index.html",
                             page_html(loaded, artifacts, skipped, incomplete, records, prov))
