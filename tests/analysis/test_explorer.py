"""The beam explorer and FSM viewer build their widgets and recompute on a tiny random Llama."""

import numpy as np
import torch

from agrec.analysis.explorer import BeamExplorer, ExplorerData, FSMViewer
from agrec.analysis.casestudy import token_labels
from agrec.decode.config import DecodeConfig
from tests.decode.tiny_lm import make_tiny


def _data():
    t = make_tiny(seed=3, n_users=3)
    rng = np.random.default_rng(0)
    scores = torch.as_tensor(rng.normal(size=(3, t.trie.n_items)), dtype=torch.float32)
    exclude = [np.array([0, 1]), np.array([2]), None]
    return ExplorerData(model=t.model, trie=t.trie, pad_token_id=0, users=np.array([7, 8, 9]), prompts=t.prompts,
                        exclude=exclude, gnn_scores=scores, targets=np.array([5, 6, 7]),
                        titles=[f"item {i}" for i in range(t.trie.n_items)], labels=token_labels(t.tokens),
                        decode=DecodeConfig(alpha=0.5, top_n=5, beam_size=6))


def test_beam_explorer_widget_updates():
    data = _data()
    ex = BeamExplorer(data, n_show=4)
    box = ex.widget()
    assert box.children and ex.image.value[:4] == b"\x89PNG"
    first = ex.last["beams"]
    assert len(first) == 6 and first["rank"].tolist() == list(range(1, 7))
    assert not set(first["item"]) & {0, 1}                       # user 7's history is excluded
    ex.controls["alpha"].value = 0.0                             # fires update through the observer
    v0 = ex.last
    assert v0["steps"]["p_G"].isna().all() and not v0["steps"]["on FSM"].any()
    ex.controls["beam_size"].value = 3
    assert len(ex.last["beams"]) == 3
    ex.controls["user"].value = 9
    v = ex.update()
    assert v["gnn"]["item"].tolist() == torch.topk(data.gnn_scores[2], 5).indices.tolist()
    # the widget's numbers are the decoder's: p̂ = (1-α)p_LLM + α p_G on the FSM
    ex.controls["alpha"].value = 0.5
    s = ex.last["steps"]
    on = s[s["on FSM"]]
    np.testing.assert_allclose(on["p_hat"], 0.5 * on["p_LLM"] + 0.5 * on["p_G"], rtol=1e-4)


def test_fsm_viewer_widget_updates():
    data = _data()
    viewer = FSMViewer(data)
    viewer.widget()
    tree, states = viewer.last["tree"], viewer.last["states"]
    leaves = tree[tree["item"] >= 0]
    assert len(leaves) == 5 and abs(leaves["weight"].sum() - 1) < 1e-5
    assert len(states) == 6 and set(states["status"]) <= {"a top-n item", "never on (left at level 1)",
                                                        "left at level 2", "left at level 3"}
    viewer.controls["top_n"].value = 2
    assert (viewer.last["tree"]["item"] >= 0).sum() == 2
    assert viewer.image.value[:4] == b"\x89PNG"


def test_images_are_drawn_when_their_tab_is_shown_and_status_names_the_view():
    data = _data()
    ex = BeamExplorer(data, n_show=4)
    ex.widget()
    first = ex.image.value
    assert "agrec-beam-beams" in ex.beams_html._dom_classes and "agrec-beam-alpha" in ex.controls["alpha"]._dom_classes
    ex.controls["alpha"].value = 0.0
    assert ex.image.value == first                     # the PNG tab is hidden: not redrawn yet
    assert 'class="agrec-view">user=7 · alpha=0 · top_n=5 · mix=prob · beam_size=6<' in ex.status.value
    ex.tabs.selected_index = 1                          # showing the tab draws the current view
    assert ex.image.value != first and ex.image.value[:4] == b"\x89PNG"
    redrawn = ex.image.value
    ex.controls["alpha"].value = 0.5                   # tab visible: drawn at once
    assert ex.image.value != redrawn
    viewer = FSMViewer(data, ex)
    viewer.widget()
    assert [viewer.tabs.get_title(i) for i in range(3)] == ["nodes", "tree", "beam states"]
    assert 'agrec-view">user=7 · top_n=5' in viewer.status.value
