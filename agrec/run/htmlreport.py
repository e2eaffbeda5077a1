"""HTML export of executed notebooks, with widget state embedded and no network access needed.

nbconvert's HTML templates load require.js and the Jupyter widgets HTML manager from CDNs; a report
must render offline, so both are served from ``reports/_static/`` and referenced relatively. They
come from the npm registry (``package.json``; ``make html-assets`` runs ``npm install``) and are
copied from ``node_modules/`` on export. MathJax is not loaded (the notebooks have no LaTeX output).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from agrec.errors import AgrecError
from agrec.io import atomic_write_text

# Where each asset comes from in node_modules (package.json pins the versions).
_ASSET_SOURCES = {
    "require.js": "requirejs/require.js",
    "html-manager": "@jupyter-widgets/html-manager/dist",
}

STATIC_DIRNAME = "_static"
REQUIRE_JS = "require.js"
WIDGET_MANAGER_JS = "html-manager/embed-amd.js"


def static_dir(reports_root: Path) -> Path:
    return reports_root / STATIC_DIRNAME


def default_node_modules() -> Path:
    return Path(__file__).resolve().parents[2] / "node_modules"


def install_static_assets(reports_root: Path, node_modules: Path | None = None) -> Path:
    """Copy the offline JavaScript assets into ``<reports_root>/_static`` (no-op when present)."""
    if not missing_static_assets(reports_root):
        return static_dir(reports_root)
    nm = node_modules or default_node_modules()
    for src in _ASSET_SOURCES.values():
        if not (nm / src).exists():
            raise AgrecError(
                f"{nm / src} not found: the HTML report needs the npm packages of package.json; "
                f"run 'make html-assets' (npm install)"
            )
    dest = static_dir(reports_root)
    dest.mkdir(parents=True, exist_ok=True)
    for name, src in _ASSET_SOURCES.items():
        target = dest / name
        if (nm / src).is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(nm / src, target)
        else:
            shutil.copyfile(nm / src, target)
    return dest


def missing_static_assets(reports_root: Path) -> list[str]:
    """The offline JavaScript assets absent from ``reports/_static`` (empty when all are there)."""
    d = static_dir(reports_root)
    return [name for name in (REQUIRE_JS, WIDGET_MANAGER_JS) if not (d / name).is_file()]


def export_html(notebook: Path, output: Path, reports_root: Path) -> Path:
    """Export an executed notebook to ``output`` (HTML), embedding its widget state.

    Args:
        notebook: executed ``.ipynb``.
        output: the ``.html`` to write (atomically).
        reports_root: the ``reports/`` folder holding ``_static/``; links to it are made relative
            to ``output`` so the report folder can be moved or served as a whole.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    rel = Path(os.path.relpath(static_dir(reports_root), output.parent)).as_posix()
    exporter = HTMLExporter(template_name="lab")
    exporter.require_js_url = f"{rel}/{REQUIRE_JS}"
    exporter.widget_renderer_url = f"{rel}/{WIDGET_MANAGER_JS}"
    exporter.mathjax_url = ""
    exporter.mermaid_js_url = ""  # loaded lazily only for mermaid blocks, which we never emit
    exporter.mermaid_layout_elk_js_url = ""
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    return atomic_write_text(output, body)


def write_index(report_dir: Path, title: str, results_table_md: str | None = None) -> Path:
    """``index.md`` linking the executed notebooks, their HTML, figures and tables of one report."""
    lines = [f"# {title}", ""]
    if results_table_md:
        lines += ["## Results", "", results_table_md.strip(), ""]
    nbs = sorted(report_dir.glob("[0-9][0-9]_*.ipynb"))
    if nbs:
        lines += ["## Notebooks", "", "| stage | notebook | HTML |", "|---|---|---|"]
        for nb in nbs:
            if nb.name.endswith(".FAILED.ipynb"):
                continue
            html = nb.with_suffix(".html")
            lines.append(
                f"| {nb.stem} | [{nb.name}]({nb.name}) | "
                + (f"[{html.name}]({html.name})" if html.is_file() else "")
                + " |"
            )
        lines.append("")
    figs = sorted((report_dir / "figures").glob("*.png"))
    if figs:
        lines += ["## Figures", ""] + [f"- [{f.stem}](figures/{f.name})" for f in figs] + [""]
    tables = sorted((report_dir / "tables").glob("*.md"))
    if tables:
        lines += ["## Tables", ""] + [f"- [{t.stem}](tables/{t.name}) ([csv](tables/{t.stem}.csv))" for t in tables]
        lines.append("")
    sweeps = sorted(p for p in (report_dir / "sweeps").glob("*/summary.csv"))
    if sweeps:
        lines += (
            ["## Sweeps", ""]
            + [f"- {p.parent.name}: [summary.csv](sweeps/{p.parent.name}/summary.csv)" for p in sweeps]
            + [""]
        )
    return atomic_write_text(report_dir / "index.md", "\n".join(lines))
