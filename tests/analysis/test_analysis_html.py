"""The explorers' widgets survive the HTML export (embedded widget state, offline assets) and render in
headless Chromium; the t-SNE plotly page renders offline from reports/_static."""

import os
from pathlib import Path

import numpy as np
import pytest

from agrec.run.htmlreport import export_html, install_static_assets

from browser import needs_chromium, open_page
from conftest import ROOT

CELL = """
import numpy as np, torch
from agrec.analysis.casestudy import token_labels
from agrec.analysis.explorer import BeamExplorer, ExplorerData, FSMViewer
from agrec.decode.config import DecodeConfig
from tests.decode.tiny_lm import make_tiny
t = make_tiny(seed=3, n_users=2)
scores = torch.as_tensor(np.random.default_rng(0).normal(size=(2, t.trie.n_items)), dtype=torch.float32)
data = ExplorerData(model=t.model, trie=t.trie, pad_token_id=0, users=np.array([0, 1]), prompts=t.prompts,
                    exclude=None, gnn_scores=scores, targets=np.array([3, 4]),
                    titles=[f"item {i}" for i in range(t.trie.n_items)], labels=token_labels(t.tokens),
                    decode=DecodeConfig(alpha=0.5, top_n=4, beam_size=5))
explorer = BeamExplorer(data, n_show=3)
display(explorer.widget())
FSMViewer(data, explorer).widget()
"""


@pytest.fixture(scope="module")
def explorer_html(tmp_path_factory):
    import nbformat
    from nbclient import NotebookClient

    tmp = tmp_path_factory.mktemp("html")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    env_pp = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env_pp}" if env_pp else str(ROOT)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        os.environ["PYTHONPATH"] = env_pp
    path = tmp / "reports" / "x" / "explorer.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    install_static_assets(tmp / "reports")
    return export_html(path, path.with_suffix(".html"), tmp / "reports")


@pytest.mark.slow
def test_widget_state_is_embedded(explorer_html):
    html = Path(explorer_html).read_text()
    assert "application/vnd.jupyter.widget-state+json" in html
    assert "FloatSlider" in html and "ImageModel" in html


@pytest.mark.browser
@needs_chromium
def test_explorer_widgets_render_offline(explorer_html):
    page = open_page(Path(explorer_html), {"sliders": ".widget-slider", "widgets": ".jupyter-widgets",
                                           "images": ".widget-image", "tables": "table"}, wait_ms=4000)
    assert page.console_errors == []
    assert page.failed_requests == []
    assert page.counts["sliders"] >= 6          # α, top_n, beams; top_n, τ, α
    assert page.counts["images"] >= 1           # the per-step probability plot / the FSM tree
    assert page.counts["tables"] >= 1           # the beams table of the visible tab


@pytest.mark.browser
@needs_chromium
def test_tsne_plotly_page_renders_offline(tmp_path):
    from agrec.analysis.embeddings import tsne_plotly
    from agrec.semantic_ids.plots import save_plotly_html

    y = np.random.default_rng(0).normal(size=(30, 2))
    fig = tsne_plotly({"rep": y}, {"first code": ["a"] * 15 + ["b"] * 15}, [f"item {i}" for i in range(30)])
    out = save_plotly_html(fig, tmp_path / "reports" / "x" / "figures" / "tsne.html",
                           static_dir=tmp_path / "reports" / "_static")
    page = open_page(out, {"plots": ".js-plotly-plot", "points": ".scatterlayer .point, .gl-container"})
    assert page.console_errors == [] and page.failed_requests == []
    assert page.counts["plots"] == 1
