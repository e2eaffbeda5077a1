"""Interactive exploration with ipywidgets: a beam explorer and an FSM viewer.

Both recompute live in a kernel (the beam explorer calls :func:`~agrec.decode.generate_items` with
``trace=True`` for one user). Their outputs are widget state only (``HTML`` tables and ``Image`` PNGs), so the
HTML export, which embeds widget state, shows the last view without a kernel. Every view has a static twin:
:meth:`BeamExplorer.figure` / :meth:`FSMViewer.figure` (matplotlib) for ``report.figure``.

Response time (``benchmarks/explorer_speed.py``): one user's beam search is small matrices, so it runs on one
thread (intra-op threads only add synchronisation, and on a busy machine they multiply the time); each user's GNN
top-n is computed once; the matplotlib PNGs, the slowest part, are drawn when their tab is shown, not on
every interaction. Every widget carries a stable CSS class (``agrec-<explorer>-<part>``) for the browser test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, cast

import numpy as np
import pandas as pd
import torch

from agrec.analysis.casestudy import beams_table, case_study_figure, gnn_top_table, trace_table
from agrec.analysis.fsmview import beam_states, build_user_fsm, fsm_tree, fsm_tree_figure
from agrec.decode.beam import DecodeResult, generate_items
from agrec.decode.config import DecodeConfig
from agrec.decode.rank import top_n_items
from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError


@dataclass
class ExplorerData:
    """What both explorers need for a set of users (all per user, aligned with ``users``).

    Attributes:
        model, trie, pad_token_id: the LM, the item trie over its code-token ids, its pad id.
        users: ``[U]`` user indices (labels only).
        prompts: the LM prompt token ids of each user.
        exclude: the items never to recommend (the history), or None.
        gnn_scores: ``[U, n_items]`` the GNN's full-sort scores.
        targets: ``[U]`` the held-out item.
        titles: item titles ``[n_items]``.
        labels: ``{token id: code label}`` for display.
        decode: the profile's decoding settings (α, top_n, mix, beam size are overridden by the controls).
    """

    model: Any
    trie: ItemTrie
    pad_token_id: int
    users: np.ndarray
    prompts: list[list[int]]
    exclude: list[np.ndarray] | None
    gnn_scores: torch.Tensor
    targets: np.ndarray
    titles: Sequence[str]
    labels: Mapping[int, str] | None = None
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        n = len(self.users)
        for name, v in (("prompts", self.prompts), ("gnn_scores", self.gnn_scores), ("targets", self.targets)):
            if len(v) != n:
                raise AgrecError(f"ExplorerData.{name} has {len(v)} entries for {n} users")

    def row_of(self, user: int) -> int:
        hits = np.flatnonzero(np.asarray(self.users) == int(user))
        if not len(hits):
            raise AgrecError(f"user {user} is not among the explorer's users ({len(self.users)} users)")
        return int(hits[0])

    def fsm_inputs(self, row: int, top_n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The user's GNN top-``top_n`` (history excluded), ``([1, n], [1, n])``; computed once per (user, n)."""
        cache = self.__dict__.setdefault("_top_n_cache", {})
        if (row, top_n) not in cache:
            ex = [self.exclude[row]] if self.exclude is not None else None
            cache[(row, top_n)] = top_n_items(self.gnn_scores[row : row + 1], top_n, ex)
        return cache[(row, top_n)]


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (None: unchanged), restoring the previous count."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _html_table(df: pd.DataFrame, hit_col: str = "hit") -> str:
    styled = df.copy()
    for c in styled.columns:
        if styled[c].dtype.kind == "f":
            styled[c] = styled[c].map(lambda v: "—" if np.isnan(v) else f"{v:.4g}")
    html = styled.to_html(index=False, border=0, classes="agrec-table", escape=True)
    if hit_col in df.columns:
        html = html.replace("<td>True</td>", '<td style="color:#1a7f37;font-weight:bold">✓</td>')
        html = html.replace("<td>False</td>", "<td></td>")
    return f'<div style="max-height:420px;overflow:auto;font-size:12px">{html}</div>'


class BeamExplorer:
    """Decode one user with chosen α, top_n, mix and beam width; show the beams and per-step probabilities.

    ``view(...)`` is the pure part (tables + figure); ``widget()`` wraps it in controls whose callback is
    :meth:`update` (call it directly to test). ``num_threads``: torch threads of one decode (None: torch's
    setting; 1 suits the small per-user matrices of a tiny or small LM).
    """

    def __init__(self, data: ExplorerData, n_show: int = 10, num_threads: int | None = 1):
        self.data, self.n_show, self.num_threads = data, n_show, num_threads
        self._widget: Any = None

    def decode(self, user: int, alpha: float, top_n: int, mix: str, beam_size: int) -> tuple[DecodeResult, Any]:
        d = self.data
        row = d.row_of(user)
        cfg = dataclasses.replace(
            d.decode, alpha=float(alpha), top_n=int(top_n), mix=cast(Any, mix), beam_size=int(beam_size)
        )  # DecodeConfig checks mix
        fsm = d.fsm_inputs(row, int(top_n)) if cfg.uses_graph else None
        ex = [d.exclude[row]] if d.exclude is not None else None
        with torch_threads(self.num_threads):
            res = generate_items(
                d.model,
                [d.prompts[row]],
                d.trie,
                fsm_inputs=fsm,
                cfg=cfg,
                exclude=ex,
                trace=True,
                pad_token_id=d.pad_token_id,
            )
        return res, fsm

    def view(self, user: int, alpha: float, top_n: int, mix: str = "prob", beam_size: int = 20) -> dict[str, Any]:
        """``{"beams": DataFrame, "steps": DataFrame, "gnn": DataFrame, "result": DecodeResult}``."""
        d = self.data
        row = d.row_of(user)
        res, _ = self.decode(user, alpha, top_n, mix, beam_size)
        target = int(d.targets[row])
        top_items, top_scores = d.fsm_inputs(row, int(top_n))
        return {
            "beams": beams_table(res, 0, d.titles, target, d.labels),
            "steps": trace_table(res, 0, d.titles, target, d.labels, n_beams=self.n_show),
            "gnn": gnn_top_table(top_items[0].numpy(), top_scores[0].numpy(), d.titles, target, d.decode.tau),
            "result": res,
        }

    def figure(self, user: int, alpha: float, top_n: int, mix: str = "prob", beam_size: int = 20):
        """The static twin of the widget for these settings."""
        v = self.view(user, alpha, top_n, mix, beam_size)
        return case_study_figure(
            v["steps"],
            title=f"user {user}: α={alpha:g}, top_n={top_n}, mix={mix}, beams={beam_size}",
            n_beams=self.n_show,
        )

    # -- widgets -----------------------------------------------------------------------------------------
    def widget(self, user: int | None = None, alpha: float | None = None):
        import ipywidgets as w

        d = self.data
        a0 = float(d.decode.alpha_at(0)) if alpha is None else float(alpha)
        self.controls = {
            "user": w.Dropdown(
                options=[int(u) for u in d.users], value=int(d.users[0] if user is None else user), description="user"
            ),
            "alpha": w.FloatSlider(value=a0, min=0.0, max=1.0, step=0.05, description="α", continuous_update=False),
            "top_n": w.IntSlider(value=d.decode.top_n, min=1, max=50, description="top_n", continuous_update=False),
            "mix": w.ToggleButtons(options=["prob", "logit"], value=d.decode.mix, description="mix"),
            "beam_size": w.IntSlider(
                value=d.decode.beam_size, min=1, max=50, description="beams", continuous_update=False
            ),
        }
        self.status = w.HTML()
        self.beams_html, self.gnn_html, self.steps_html = w.HTML(), w.HTML(), w.HTML()
        self.image = w.Image(format="png")
        self.tabs = w.Tab(children=[self.beams_html, self.image, self.steps_html, self.gnn_html])
        for i, t in enumerate(("beams", "per-step probabilities", "token trace", "GNN top-n")):
            self.tabs.set_title(i, t)
        _classes(
            "agrec-beam",
            {
                **self.controls,
                "status": self.status,
                "beams": self.beams_html,
                "image": self.image,
                "steps": self.steps_html,
                "gnn": self.gnn_html,
                "tabs": self.tabs,
            },
        )
        self._image_args: tuple | None = None
        for c in self.controls.values():
            c.observe(self.update, names="value")
        self.tabs.observe(lambda _: self._draw_image(), names="selected_index")
        self.update()
        self._draw_image(force=True)  # the initial view complete (the HTML export embeds it)
        self._widget = w.VBox(
            [w.HBox(list(self.controls.values())[:3]), w.HBox(list(self.controls.values())[3:]), self.status, self.tabs]
        )
        self._widget.add_class("agrec-beam-explorer")
        return self._widget

    def _draw_image(self, force: bool = False) -> None:
        """Draw the per-step probability PNG if it is stale and its tab is shown (or ``force``)."""
        if self._image_args is None or not (force or self.tabs.selected_index == 1):
            return
        steps, title = self._image_args
        self.image.value = _png(case_study_figure(steps, title=title, n_beams=self.n_show))
        self._image_args = None

    def update(self, change=None) -> dict[str, Any]:
        """Recompute the view from the controls' current values (the widgets' callback)."""
        s = {k: c.value for k, c in self.controls.items()}
        v = self.view(s["user"], s["alpha"], s["top_n"], s["mix"], s["beam_size"])
        hit = v["beams"]["hit"].any() if len(v["beams"]) else False
        rank = int(v["beams"].loc[v["beams"]["hit"], "rank"].iloc[0]) if hit else None
        target = int(self.data.targets[self.data.row_of(s["user"])])
        self.beams_html.value = _html_table(v["beams"])
        self.steps_html.value = _html_table(v["steps"])
        self.gnn_html.value = _html_table(v["gnn"])
        self._image_args = (v["steps"], f"user {s['user']}, α={s['alpha']:g}")
        self._draw_image()
        # The settings label last: widget updates reach the browser in the order they are set, so once it
        # shows these settings every table (and the image) already does. Set first, a reader (and the browser
        # test, once, on a busy machine) could read a table of the previous settings under the new label.
        self.status.value = (
            f'<span class="agrec-view">{view_label(s)}</span><br><b>target</b>: '
            f"{self.data.titles[target]} — "
            + (f'<span style="color:#1a7f37">hit at rank {rank}</span>' if hit else "not in the beams")
        )
        self.last = v
        return v


class FSMViewer:
    """The user's top-n code-prefix tree with p_G per edge and item weights, and the state each beam is in."""

    def __init__(self, data: ExplorerData, explorer: BeamExplorer | None = None):
        self.data = data
        self.explorer = explorer or BeamExplorer(data)
        self._fsm_cache: dict[tuple, tuple[pd.DataFrame, Any]] = {}

    def view(self, user: int, top_n: int, tau: float, alpha: float, beam_size: int = 20) -> dict[str, Any]:
        """``{"tree": DataFrame, "states": DataFrame}``: the FSM of ``user`` and where its beams (decoded at
        ``alpha``) end up."""
        d = self.data
        row = d.row_of(user)
        items, scores = d.fsm_inputs(row, int(top_n))
        key = (row, int(top_n), float(tau))
        if key not in self._fsm_cache:  # the tree depends on (user, top_n, τ) only, not on α
            fsm = build_user_fsm(
                d.trie, items[0], scores[0], tau=float(tau), agg=d.decode.agg, state="prefix", floor=d.decode.floor
            )
            self._fsm_cache[key] = fsm_tree(fsm, d.titles, d.labels, top_items=items[0].tolist())
        tree = self._fsm_cache[key]
        saved = d.decode
        d.decode = dataclasses.replace(saved, tau=float(tau))
        try:
            res, _ = self.explorer.decode(user, alpha, top_n, d.decode.mix, beam_size)
        finally:
            d.decode = saved
        ok = res.items[0] >= 0
        assert res.trace is not None  # decode() asks for the trace
        states = beam_states(tree, res.trace.tokens[0][ok].numpy(), d.labels)
        states.insert(1, "item", res.items[0][ok].numpy())
        states.insert(2, "title", [d.titles[int(i)] for i in res.items[0][ok]])
        return {"tree": tree, "states": states}

    def figure(self, user: int, top_n: int, tau: float, alpha: float, beam_size: int = 20):
        v = self.view(user, top_n, tau, alpha, beam_size)
        return fsm_tree_figure(
            v["tree"], v["states"], title=f"user {user}: FSM of the GNN top-{top_n} (τ={tau:g}); beams at α={alpha:g}"
        )

    def widget(self, user: int | None = None, alpha: float | None = None):
        import ipywidgets as w

        d = self.data
        self.controls = {
            "user": w.Dropdown(
                options=[int(u) for u in d.users], value=int(d.users[0] if user is None else user), description="user"
            ),
            "top_n": w.IntSlider(value=d.decode.top_n, min=1, max=30, description="top_n", continuous_update=False),
            "tau": w.FloatLogSlider(
                value=d.decode.tau, base=10, min=-2, max=1, step=0.1, description="τ", continuous_update=False
            ),
            "alpha": w.FloatSlider(
                value=float(d.decode.alpha_at(0)) if alpha is None else float(alpha),
                min=0.0,
                max=1.0,
                step=0.05,
                description="α (beams)",
                continuous_update=False,
            ),
        }
        self.image = w.Image(format="png")
        self.status = w.HTML()
        self.tree_html, self.states_html = w.HTML(), w.HTML()
        # The nodes table (p_G per edge) first: it answers at once; the drawing is made when its tab is shown.
        self.tabs = w.Tab(children=[self.tree_html, self.image, self.states_html])
        for i, t in enumerate(("nodes", "tree", "beam states")):
            self.tabs.set_title(i, t)
        _classes(
            "agrec-fsm",
            {
                **self.controls,
                "status": self.status,
                "nodes": self.tree_html,
                "image": self.image,
                "states": self.states_html,
                "tabs": self.tabs,
            },
        )
        self._image_args: tuple | None = None
        for c in self.controls.values():
            c.observe(self.update, names="value")
        self.tabs.observe(lambda _: self._draw_image(), names="selected_index")
        self.update()
        self._draw_image(force=True)
        box = w.VBox(
            [w.HBox(list(self.controls.values())[:2]), w.HBox(list(self.controls.values())[2:]), self.status, self.tabs]
        )
        box.add_class("agrec-fsm-viewer")
        return box

    def _draw_image(self, force: bool = False) -> None:
        if self._image_args is None or not (force or self.tabs.selected_index == 1):
            return
        tree, states, title = self._image_args
        self.image.value = _png(fsm_tree_figure(tree, states, title=title))
        self._image_args = None

    def update(self, change=None) -> dict[str, Any]:
        s = {k: c.value for k, c in self.controls.items()}
        v = self.view(s["user"], s["top_n"], s["tau"], s["alpha"], self.data.decode.beam_size)
        tree = (
            v["tree"]
            .drop(columns=["parent"])
            .assign(
                prefix=lambda t: t["prefix"].map(
                    lambda p: "".join(self.data.labels.get(int(x), str(x)) if self.data.labels else str(x) for x in p)
                )
            )
        )
        self.tree_html.value = _html_table(tree)
        self.states_html.value = _html_table(v["states"])
        self._image_args = (v["tree"], v["states"], f"user {s['user']}: top-{s['top_n']}, τ={s['tau']:.3g}")
        self._draw_image()
        self.status.value = f'<span class="agrec-view">{view_label(s)}</span>'  # last, as in BeamExplorer.update
        self.last = v
        return v


def view_label(settings: Mapping[str, Any]) -> str:
    """``user=12 · alpha=0.3 · top_n=10 · beam_size=20``: the controls' values, in a fixed format."""
    return " · ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def _classes(prefix: str, widgets: Mapping[str, Any]) -> None:
    """Stable CSS classes (``<prefix>-<name>``) on the explorer's widgets, for styling and browser tests."""
    for name, wdg in widgets.items():
        wdg.add_class(f"{prefix}-{name.replace('_', '-')}")
