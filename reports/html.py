"""`index.html`: every table and figure of a report on one page, each figure linked to its PDF and
each table to its Markdown, LaTeX and CSV files. Plain HTML with inline CSS, so the folder can be
opened from disk, copied or served as it is."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bench.pipeline.storage import atomic_file
from reports.tables import display_cells

if TYPE_CHECKING:
    from reports.report import Section

STYLE = """body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ccc; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #333; }
figure { display: inline-block; vertical-align: top; width: 30rem; max-width: 100%; margin: 0.5rem 1rem 1rem 0; }
figure img { width: 100%; }
.missing { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.5rem 1rem; }
.notes { font-size: 0.85rem; color: #444; }"""


def write_index(path: Path, sections: list[Section]) -> Path:
    """Write the page (atomically) and return its path."""
    body = [f"<h1>kdbench report</h1>\n<ul>{''.join(_contents_line(s) for s in sections)}</ul>"]
    body += [_section(section, path.parent) for section in sections]
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>kdbench report</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    with atomic_file(path) as handle:
        handle.write(page)
    return path


def _contents_line(section: Section) -> str:
    study = section.study
    return f'<li><a href="#{_anchor(study.name)}">{html.escape(study.name)}</a>: {section.state}</li>'


def _section(section: Section, root: Path) -> str:
    study = section.study
    parts = [f'<h2 id="{_anchor(study.name)}">{html.escape(study.name)}: {html.escape(study.title)}</h2>',
             f"<p>from <code>{html.escape(str(study.source))}</code></p>"]
    if section.tables is None or study.missing:
        what = "No finished runs yet." if section.tables is None else "Incomplete: the tables show what has finished."
        parts.append(f'<div class="missing"><p>{what}</p>'
                     f"<ul>{''.join(f'<li>{html.escape(m)}</li>' for m in study.missing)}</ul></div>")
    if section.tables is not None:
        notes = [n for n in section.tables.notes if n and not n.startswith("missing: ")]
        parts.append(f'<ul class="notes">{"".join(f"<li>{html.escape(n)}</li>" for n in notes)}</ul>')
        for heading, table in section.tables.tables.items():
            parts += [f"<h3>{html.escape(heading)}</h3>"] if heading else []
            parts.append(display_cells(table).to_html(index=False, border=0))
        parts.append("<p>files: " + ", ".join(_link(f, root) for f in section.files) + "</p>")
    for png, caption in section.figures.items():
        parts.append(f'<figure><img src="{_href(png, root)}" alt="{html.escape(png.stem)}">'
                     f"<figcaption><b>{html.escape(png.stem)}</b>: {html.escape(caption)} "
                     f"({_link(png.with_suffix('.pdf'), root)}, {_link(png, root)})</figcaption></figure>")
    return "\n".join(parts)


def _href(path: Path, root: Path) -> str:
    return html.escape(Path(os.path.relpath(path, root)).as_posix())


def _link(path: Path, root: Path) -> str:
    return f'<a href="{_href(path, root)}">{html.escape(path.suffix.lstrip("."))}</a>'


def _anchor(name: str) -> str:
    return "study-" + "".join(c if c.isalnum() else "-" for c in name)
