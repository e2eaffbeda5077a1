"""The analysis stage: gathers what the earlier stages produced (all cached) for the 06_analysis notebook.

It computes nothing expensive of its own: the rankings come from the decode stage's files, the models from the
GNN and LM stages; only the case study, the explorers and the t-SNE decode or embed anew (a few users, a sample
of items). Every function takes the :class:`AnalysisInputs` and returns tables / figures / arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from agrec.analysis.casestudy import (
    beams_table,
    case_study_figure,
    gnn_top_table,
    history_table,
    pick_case_user,
    token_labels,
    trace_table,
)
from agrec.analysis.complementarity import complementarity_breakdown, hits_at_k, target_popularity
from agrec.analysis.config import AnalysisConfig
from agrec.analysis.embeddings import first_genres, lm_code_embeddings, rqvae_latents, sample_items, tsne_2d
from agrec.analysis.explorer import ExplorerData
from agrec.analysis.homogeneity import distinct_prefixes
from agrec.decode.beam import generate_items
from agrec.decode.point import DecodePoint
from agrec.decode.rank import top_n_items
from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError
from agrec.run.report import read_results
from agrec.run.session import Session
from agrec.data.stage import load_run_data
from agrec.decode.stage import evaluate_decoding
from agrec.gnn.config import GNN_MODELS
from agrec.lm.stage import train_lm
from agrec.scorers import agrec_row, load_scorer, only_row
from agrec.semantic_ids.stage import prepare_semantic_ids

STAGE = "analysis"


@dataclass
class AnalysisInputs:
    """Everything the analysis reads, for the evaluated users of ``cfg.target``."""

    cfg: AnalysisConfig
    ds: Any  # SeqDataset
    split: Any  # LeaveOneOutSplit
    sem: Any  # SemanticIds
    bundle: Any  # LMBundle
    gnn: Any  # the main GNN (GraphRecommender)
    gnn_name: str
    decode: Any  # DecodeReport
    trie: ItemTrie
    titles: list[str]
    labels: dict[int, str]
    rankings: dict[str, dict[str, np.ndarray]]  # "lm" (α = 0), "gnn", "agrec": users/targets/items/scores
    agrec_settings: Any  # DecodeConfig at the chosen α, τ

    @property
    def users(self) -> np.ndarray:
        return self.rankings["lm"]["users"]

    @property
    def targets(self) -> np.ndarray:
        return self.rankings["lm"]["targets"]

    def history(self, user: int) -> np.ndarray:
        return self.split.history(int(user), self.cfg.target)

    session_exclude: bool = True


def gather_inputs(session: Session, log=print) -> AnalysisInputs:
    """Run (or reuse) every earlier stage and load the decode stage's rankings."""

    profile = session.profile
    cfg: AnalysisConfig = getattr(profile, "analysis", None) or AnalysisConfig()
    data = load_run_data(session)
    ds, split = data.ds, data.split
    sem = prepare_semantic_ids(session, progress=False)
    bundle = train_lm(session)
    scorer = profile.evaluation.scorer
    # The GNN whose scores the explorers and the case study show: the decode stage's own model for the target
    # (the test-time model of gnn.train.test_graph for "test"); with a non-GNN scorer, the profile's gnn.model.
    gnn_name = scorer if scorer in GNN_MODELS else profile.gnn.model
    gnn = cast(Any, load_scorer(data, gnn_name)).model(cfg.target)  # a GNN scorer: its model for the target
    report = evaluate_decoding(session, log=log)
    rankings = {
        "lm": report.rankings("w/o Graph", cfg.target),
        "gnn": report.rankings(only_row(scorer), cfg.target),
        "agrec": report.rankings(agrec_row(scorer), cfg.target),
    }
    # the decoder of the main AGRec row, rebuilt from the point the decode stage recorded for it
    main = next((r for r in report.rows if r["name"] == agrec_row(scorer)), None)
    if main is None:
        raise AgrecError(
            f"{report.folder}: the decode results have no row {agrec_row(scorer)!r}; rerun the decode stage"
        )
    settings = DecodePoint.from_json(main.get("settings"), f"{report.folder}/results.json {main['name']!r}").config(
        profile.decode
    )
    codes = bundle.codes
    titles = [ds.item_title(i) for i in range(ds.n_items)]
    labels = token_labels(bundle.item_token_ids, [codes.item_tokens(i) for i in range(codes.n_items)])
    return AnalysisInputs(
        cfg=cfg,
        ds=ds,
        split=split,
        sem=sem,
        bundle=bundle,
        gnn=gnn,
        gnn_name=gnn_name,
        decode=report,
        trie=ItemTrie.build(bundle.item_token_ids),
        titles=titles,
        labels=labels,
        rankings=rankings,
        agrec_settings=settings,
        session_exclude=bool(profile.evaluation.exclude_history),
    )


# -- Fig. 1 --------------------------------------------------------------------------------------------------
def complementarity_analysis(inp: AnalysisInputs) -> dict[str, Any]:
    """:func:`complementarity_breakdown` of the α = 0 decoder against the GNN alone."""
    users = inp.users
    lengths = np.array([len(inp.history(u)) for u in users])
    pop = target_popularity(inp.split.train, inp.targets, inp.ds.n_items)
    return complementarity_breakdown(
        inp.rankings["lm"]["items"],
        inp.rankings["gnn"]["items"],
        inp.targets,
        lengths,
        pop,
        k=inp.cfg.k,
        activity_buckets=inp.cfg.activity_buckets,
        popularity_buckets=inp.cfg.popularity_buckets,
    )


# -- Fig. 2 --------------------------------------------------------------------------------------------------
def homogeneity_counts(inp: AnalysisInputs) -> dict[str, np.ndarray]:
    """Distinct prefixes per level among the top ``homogeneity_beams`` beams, α = 0 vs the chosen α."""
    b = inp.cfg.homogeneity_beams
    codes = inp.bundle.codes.codes
    a = inp.agrec_settings.alpha
    return {
        "α=0 (w/o Graph)": distinct_prefixes(inp.rankings["lm"]["items"][:, :b], codes),
        f"α={a:g} (AGRec)": distinct_prefixes(inp.rankings["agrec"]["items"][:, :b], codes),
    }


# -- t-SNE ---------------------------------------------------------------------------------------------------
def item_representations(inp: AnalysisInputs, semantic_ids_folder) -> dict[str, np.ndarray]:
    """``{name: [n_items, d]}``: RQ-VAE latents (when an RQ-VAE was trained), the quantiser's input (text or
    collaborative embeddings) otherwise (neither when the codes were given without item text), the GNN's item
    embeddings and the LM's averaged code-token embeddings."""
    reps: dict[str, np.ndarray] = {}
    if inp.sem.embeddings is not None:
        z = rqvae_latents(semantic_ids_folder, inp.sem.embeddings)
        collaborative = (inp.sem.record.get("embedding") or {}).get("encoder") == "collaborative"
        raw = "collaborative embedding" if collaborative else "text embedding"
        reps["RQ-VAE latent" if z is not None else raw] = z if z is not None else inp.sem.embeddings
    reps[f"GNN ({inp.gnn_name})"] = inp.gnn.item_embeddings().detach().float().cpu().numpy()
    reps["LM code tokens"] = lm_code_embeddings(inp.bundle.model, inp.bundle.item_token_ids)
    return reps


def tsne_analysis(inp: AnalysisInputs, reps: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """t-SNE of a shared item sample in every representation, with first-code and genre labels (no genre
    colouring when no item has a genre, e.g. an LC-Rec folder with codes and no item text)."""
    idx = sample_items(inp.ds.n_items, inp.cfg.tsne_items, seed)
    coords = {name: tsne_2d(x[idx], inp.cfg.tsne_perplexity, seed) for name, x in reps.items()}
    genres = first_genres(inp.ds.item_info, inp.ds.n_items)
    first = inp.bundle.codes.codes[:, 0]
    colourings = {"first code": [f"a_{int(first[i])}" for i in idx]}
    if any(g != "?" for g in genres):
        colourings["genre"] = [genres[i] for i in idx]
    return {
        "items": idx,
        "coords": coords,
        "colourings": colourings,
        "hover": [f"{inp.titles[i]} · {''.join(inp.bundle.codes.item_tokens(int(i)))}" for i in idx],
    }


# -- case study and explorers ---------------------------------------------------------------------------------
def explorer_data(inp: AnalysisInputs, n_users: int | None = None, first: int | None = None) -> ExplorerData:
    """The explorers' inputs for the first ``n_users`` evaluated users (``cfg.explorer_users``), making sure
    user row ``first`` (e.g. the case-study user) is among them."""
    n = inp.cfg.explorer_users if n_users is None else n_users
    rows = list(range(min(n, len(inp.users))))
    if first is not None and first not in rows:
        rows = [first] + rows[:-1]
    users = inp.users[rows]
    with torch.no_grad():
        scores = inp.gnn.full_sort_predict(torch.as_tensor(users, dtype=torch.long)).float().cpu()
    return ExplorerData(
        model=inp.bundle.model,
        trie=inp.trie,
        pad_token_id=inp.bundle.pad_token_id,
        users=users,
        prompts=[inp.bundle.prompt_ids(inp.history(u)) for u in users],
        exclude=[inp.history(u) for u in users] if inp.session_exclude else None,
        gnn_scores=scores,
        targets=inp.targets[rows],
        titles=inp.titles,
        labels=inp.labels,
        decode=inp.agrec_settings,
    )


def case_study(inp: AnalysisInputs, n_beams: int = 10) -> dict[str, Any]:
    """Paper Fig. 8 for one user (``cfg.case_user``, else the first AGRec hit that α = 0 misses): the history,
    the GNN top-n with FSM weights, the beams and the token trace of a traced decode at the chosen α, τ."""
    k = inp.cfg.k
    hit_agrec = hits_at_k(inp.rankings["agrec"]["items"], inp.targets, k)
    hit_lm = hits_at_k(inp.rankings["lm"]["items"], inp.targets, k)
    preferred = None
    if inp.cfg.case_user is not None:
        where = np.flatnonzero(inp.users == inp.cfg.case_user)
        if not len(where):
            raise AgrecError(
                f"analysis.case_user = {inp.cfg.case_user} is not an evaluated user "
                f"(users {int(inp.users.min())}..{int(inp.users.max())})"
            )
        preferred = int(where[0])
    row = pick_case_user(hit_agrec, hit_lm, preferred)
    user, target = int(inp.users[row]), int(inp.targets[row])
    cfg = inp.agrec_settings
    hist = inp.history(user)
    ex = [hist] if inp.session_exclude else None
    with torch.no_grad():
        scores = inp.gnn.full_sort_predict(torch.as_tensor([user], dtype=torch.long)).float().cpu()
    top_items, top_scores = top_n_items(scores, cfg.top_n, ex)
    res = generate_items(
        inp.bundle.model,
        [inp.bundle.prompt_ids(hist)],
        inp.trie,
        fsm_inputs=(top_items, top_scores) if cfg.uses_graph else None,
        cfg=cfg,
        exclude=ex,
        trace=True,
        pad_token_id=inp.bundle.pad_token_id,
    )
    trace = trace_table(res, 0, inp.titles, target, inp.labels, n_beams=n_beams)
    title = f"user {user}: α={cfg.alpha_at(0):g}, τ={cfg.tau:g}; target «{inp.titles[target]}»"
    return {
        "row": row,
        "user": user,
        "target": target,
        "target_title": inp.titles[target],
        "history": history_table(hist, inp.titles, last=10),
        "gnn_top": gnn_top_table(top_items[0].numpy(), top_scores[0].numpy(), inp.titles, target, cfg.tau),
        "beams": beams_table(res, 0, inp.titles, target, inp.labels).head(n_beams),
        "trace": trace,
        "figure": case_study_figure(trace, title=title, n_beams=n_beams),
        "hit_lm": bool(hit_lm[row]),
        "hit_agrec": bool(hit_agrec[row]),
    }


# Version of results/analysis.json's layout (analysis_results writes it, read_complementarity reads it).
RESULTS_FORMAT = 1
COMPLEMENTARITY_GROUPS: tuple[str, ...] = ("LLM only", "GNN only", "both", "neither")


def analysis_results(
    comp: dict[str, Any], homog: pd.DataFrame, case: dict[str, Any], runs_with_alpha_curve: list[str]
) -> dict[str, Any]:
    """What ``report.record("analysis", …, RESULTS_FORMAT)`` stores: the overall complementarity counts
    (:func:`complementarity_analysis`), the mean homogeneity per setting, the case-study user and the runs
    whose α curves were drawn together."""
    return {
        "complementarity": comp["overall"],
        "homogeneity": {
            r["setting"]: {k: v for k, v in r.items() if k.startswith("mean")} for r in homog.to_dict("records")
        },
        "case_study": {
            "user": case["user"],
            "target": case["target_title"],
            "hit_lm": case["hit_lm"],
            "hit_agrec": case["hit_agrec"],
        },
        "runs_with_alpha_curve": list(runs_with_alpha_curve),
    }


def read_complementarity(report_dir: str | Path) -> dict[str, int] | None:
    """The overall complementarity counts (paper Fig. 1) of a report folder's ``results/analysis.json``, or
    None where the analysis stage has not run; a record without the four groups is an error naming the file."""
    d = read_results(report_dir, "analysis", RESULTS_FORMAT, required=False)
    if d is None or d.get("complementarity") is None:
        return None
    comp = d["complementarity"]
    if not isinstance(comp, dict) or any(not isinstance(comp.get(g), int) for g in COMPLEMENTARITY_GROUPS):
        path = Path(report_dir) / "results" / "analysis.json"
        raise AgrecError(
            f"{path}: 'complementarity' must hold integer counts of {list(COMPLEMENTARITY_GROUPS)}, got {comp!r}"
        )
    return {g: comp[g] for g in COMPLEMENTARITY_GROUPS}
