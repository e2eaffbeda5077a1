"""Our Table 2: the decode stage's test rows of several dataset runs beside the paper's published rows.

Each run contributes the rows that answer "does graph reasoning pay off here": the LM alone
(``w/o Graph``), the GNN alone (``GNN only (<scorer>)``), ``SASRec only`` when the profile trained it,
``AGRec (<scorer>)`` at the α chosen on validation, and one ``AGRec [<name>]`` row per decode variant
(:mod:`agrec.decode.variants`). Every AGRec row carries the paired p-values against its two parts that the
decode stage recorded (:mod:`agrec.analysis.significance`: exact McNemar for HR@K, Wilcoxon signed-rank for
NDCG@K). Every number is read from a report folder's ``results/decode.json`` (what ``agrec run`` wrote), never
recomputed here.

Where the report folder also holds the aggregate of several seeds (``seeds/summary.csv``, written by
``agrec seeds``), a row present there shows the mean ± sd over the seeds instead of the one run, and its
p-values are the tests pooled over the seeds with the user as the unit: the main AGRec row's from
``seeds/summary.csv``, another AGRec row's from ``seeds/vs_<row slug>/summary.csv`` (``agrec seeds
--reference '<row>'``), left empty where that aggregate does not exist rather than mixed with one seed's.

The paper's rows (``PAPER_ROWS``) carry only values we could verify against the paper's text; the others are
left empty rather than copied from memory. The protocol differences are part of the table's caption
(:data:`PROTOCOL_NOTES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from agrec.analysis.cost import cost_markdown, cost_table
from agrec.analysis.stage import COMPLEMENTARITY_GROUPS, read_complementarity
from agrec.errors import AgrecError
from agrec.manifest import check_manifest
from agrec.run.report import read_results
from agrec.scorers import DISPLAY, agrec_row, only_row
from agrec.config import load_profile
from agrec.io import atomic_write_text

METRICS: tuple[str, ...] = ("HR@5", "NDCG@5", "HR@10", "NDCG@10")


def _row(h5: float, h10: float, n5: float, n10: float) -> dict[str, float | None]:
    """A published row in the papers' column order (H@5, H@10, N@5, N@10)."""
    return {"HR@5": h5, "NDCG@5": n5, "HR@10": h10, "NDCG@10": n10}


# Published rows, test split: AGRec's Table 2 (Wang et al., ACL Findings 2025; its AGRec rows fine-tune
# Llama-3.2-1B; "LR-Rec" in that table is LC-Rec), as quoted in this project's issue 20, and LC-Rec's own paper
# (Zheng et al., ICDE 2024) for the datasets it has. Values are as printed (4 decimals); :func:`bound_violations`
# checks each row against what any ranking metric must satisfy.
PAPER_ROWS: dict[str, dict[str, dict[str, float | None]]] = {
    "Instruments": {
        "SASRec": _row(0.0751, 0.0947, 0.0627, 0.0690),
        "TIGER": _row(0.0870, 0.1058, 0.0737, 0.0797),
        "LC-Rec": _row(0.0835, 0.1056, 0.0741, 0.0789),
        "LETTER": _row(0.0921, 0.1137, 0.0791, 0.0848),
        "AGRec (Llama-3.2-1B)": _row(0.1053, 0.1260, 0.0883, 0.0950),
        "LC-Rec (its own paper)": _row(0.1002, 0.1220, 0.0856, 0.0926),
    },
    "Arts": {
        "SASRec": _row(0.0757, 0.1051, 0.0521, 0.0612),
        "TIGER": _row(0.0788, 0.1012, 0.0631, 0.0703),
        "LC-Rec": _row(0.0931, 0.1133, 0.0752, 0.0812),
        "LETTER": _row(0.0889, 0.1116, 0.0740, 0.0798),
        "AGRec (Llama-3.2-1B)": _row(0.1019, 0.1223, 0.0820, 0.0887),
        "LC-Rec (its own paper)": _row(0.1011, 0.1266, 0.0828, 0.0906),
    },
    "Games": {
        "SASRec": _row(0.0581, 0.0940, 0.0365, 0.0481),
        "TIGER": _row(0.0599, 0.0939, 0.0392, 0.0501),
        "LC-Rec": _row(0.0626, 0.0930, 0.0437, 0.0535),
        "LETTER": _row(0.0642, 0.0948, 0.0443, 0.0545),
        "AGRec (Llama-3.2-1B)": _row(0.0815, 0.1064, 0.0572, 0.0671),
        "LC-Rec (its own paper)": _row(0.0800, 0.1174, 0.0560, 0.0681),
    },
    "Yelp": {
        "SASRec": _row(0.0183, 0.0296, 0.0116, 0.0152),
        "TIGER": _row(0.0253, 0.0407, 0.0164, 0.0213),
        "LC-Rec": _row(0.0250, 0.0282, 0.0175, 0.0208),
        "LETTER": _row(0.0276, 0.0423, 0.0181, 0.0224),
        "AGRec (Llama-3.2-1B)": _row(0.0295, 0.0463, 0.0187, 0.0243),
    },
}

# What HR@K / NDCG@K of one ranking per user must satisfy (one relevant item, NDCG of a hit at rank r is
# 1/log2(r + 1)), as linear inequalities sum(c * metric) <= 0.
BOUNDS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H@5 <= H@10", {"HR@5": 1.0, "HR@10": -1.0}),
    ("N@5 <= H@5", {"NDCG@5": 1.0, "HR@5": -1.0}),
    ("N@5 >= H@5/log2 6", {"HR@5": 1.0 / math.log2(6), "NDCG@5": -1.0}),
    (
        "N@10-N@5 <= (H@10-H@5)/log2 7",
        {"NDCG@10": 1.0, "NDCG@5": -1.0, "HR@10": -1.0 / math.log2(7), "HR@5": 1.0 / math.log2(7)},
    ),
    (
        "N@10-N@5 >= (H@10-H@5)/log2 11",
        {"HR@10": 1.0 / math.log2(11), "HR@5": -1.0 / math.log2(11), "NDCG@10": -1.0, "NDCG@5": 1.0},
    ),
)


def bound_violations(metrics: dict[str, float | None], decimals: int | None = 4) -> list[str]:
    """The :data:`BOUNDS` that no true values within the rounding of ``metrics`` (``decimals`` printed; None:
    exact) can satisfy. A row with a missing metric is not checked (empty list).

    From ranks: users hit at ranks 6..10 add between 1/log2 11 and 1/log2 7 each to NDCG@10 - NDCG@5, so the paper's
    Games AGRec row (N@10 - N@5 = .0099 > (.1064 - .0815)/log2 7 = .0089) cannot come from one ranking per user."""
    values = {m: metrics.get(m) for m in METRICS}
    if any(v is None for v in values.values()):
        return []
    x = {m: float(v) for m, v in values.items() if v is not None}
    half = 0.0 if decimals is None else 0.5 * 10.0**-decimals
    out = []
    for name, coef in BOUNDS:
        # the smallest value of the left side over every true value within the rounding: a violation if > 0
        lowest = sum(c * x[m] for m, c in coef.items()) - half * sum(abs(c) for c in coef.values())
        if lowest > 1e-12:
            out.append(name)
    return out


PROTOCOL_NOTES: tuple[str, ...] = (
    "ours: the authors' public inter/index files (leave-one-out, last item = test), full ranking over all items "
    "with each user's history excluded (unless a note below names the dataset); a 4-layer x 128 Llama trained "
    "from scratch on the given codes (1.2 M parameters) instead of LoRA on Llama-3.2-1B; LightGCN 64-d; α chosen "
    "on validation NDCG@10, never on test",
    "ours: at test time the GNN also propagates over the user's validation interaction (the LM's test prompt "
    "contains it); the paper's released code fits LightGCN on train + validation and picks its epoch on test",
)


@dataclass
class SeedRows:
    """The aggregate over seeds of one report folder (``seeds/``)."""

    seeds: list[int]
    mean: dict[str, dict[str, float]]  # row -> metric -> mean over seeds
    sd: dict[str, dict[str, float]]  # row -> metric -> sample sd (NaN for one seed)
    n_seeds: dict[str, int]  # row -> seeds that have it
    alpha: dict[str, str]  # row -> its α per seed, as summary.csv writes it
    pooled_p: dict[str, dict[str, dict[str, float]]]  # reference row -> other row -> metric -> pooled p


@dataclass
class RunRows:
    """The rows of one dataset run read from its report folder."""

    dataset: str
    profile: str
    folder: Path
    rows: dict[str, dict[str, float]]  # row name -> test metrics
    p_values: dict[str, dict[str, float]]  # row name -> metric -> p of AGRec vs that row
    chosen: dict[str, Any]
    n_users: int
    scorer: str
    parts_p: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # AGRec row -> part row -> p
    complementarity: dict[str, int] | None = None  # test HR@10 hits by group (results/analysis.json), if analysed
    variant_alpha: dict[str, Any] = field(default_factory=dict)  # "AGRec [x]" row -> its α
    row_alpha: dict[str, Any] = field(default_factory=dict)  # AGRec row -> the α it was decoded at
    selected: dict[str, Any] | None = None  # the shipped configuration, with its regret
    seeds: SeedRows | None = None  # the aggregate of `agrec seeds`, where the report has one


def read_run(
    report_dir: str | Path, scorer: str = "lightgcn", dataset: str | None = None, profile: str | None = None
) -> RunRows:
    """The decode results of one report folder (``<reports>/<dataset>/<profile>``). ``dataset`` and ``profile``
    name the run where the folder's own names do not (a ``pipeline.variant`` is a deeper folder); by default they are
    the folder's parent's name and its own."""
    folder = Path(report_dir)
    path = folder / "results" / "decode.json"
    d = read_results(folder, "decode", DECODE_RESULTS_FORMAT)
    rows = d.get("rows")
    if not isinstance(rows, dict) or not rows:
        raise AgrecError(f"{path}: expected a non-empty 'rows' object of row name -> {{valid, test}} metrics")
    test = {}
    for name, r in rows.items():
        if not isinstance(r, dict) or not isinstance(r.get("test"), dict):
            raise AgrecError(f"{path}: row {name!r} has no test metrics")
        test[name] = r["test"]
    variants = d.get("decode_variants") or {}
    row_alpha = d.get("row_alpha") or {}
    selected = d.get("selected")
    if selected is not None and (not isinstance(selected, dict) or not isinstance(selected.get("source"), str)):
        raise AgrecError(f"{path}: 'selected' does not name its source row")
    return RunRows(
        dataset=folder.parent.name if dataset is None else dataset,
        profile=folder.name if profile is None else profile,
        folder=folder,
        rows=test,
        p_values=d.get("significance_test") or {},
        chosen=d.get("chosen") or {},
        n_users=int(d.get("n_users", 0)),
        scorer=scorer,
        parts_p=d.get("significance_parts") or {},
        variant_alpha={v.get("row", f"AGRec [{k}]"): v.get("alpha") for k, v in variants.items()},
        row_alpha={k: v.get("alpha") for k, v in row_alpha.items() if isinstance(v, dict)},
        selected=selected,
        complementarity=read_complementarity(folder),
        seeds=read_seeds(folder, scorer),
    )


# Version of results/decode.json's layout (decode_record writes it, read_run reads it; see agrec.run.report).
DECODE_RESULTS_FORMAT = 1


def decode_record(
    dec: Any, significance: pd.DataFrame, parts: dict[str, dict[str, dict[str, float]]]
) -> dict[str, Any]:
    """``results/decode.json`` of a report folder (what :func:`read_run` reads back): test and validation metrics
    per row, the main row's paired p-values against every row (``significance``, a :func:`decode_significance`
    frame), every AGRec row's against its parts (``parts``, :func:`p_values_by_row`), the α/τ each AGRec row was
    decoded at, the decode variants' choices and the selected configuration with its regret."""
    record: dict[str, Any] = {
        "n_users": dec.n_users,
        "chosen": dec.chosen,
        "seconds": dec.seconds,
        "rows": {r["name"]: r["metrics"] for r in dec.rows},
        "significance_test": {
            m: g.set_index("metric")["p_value"].to_dict() for m, g in significance.groupby("method", sort=False)
        },
        "row_alpha": {
            r["name"]: {"alpha": r["settings"].get("alpha"), "tau": r["settings"].get("tau")}
            for r in dec.rows
            if r["name"].startswith("AGRec")
        },
        "significance_parts": parts,
    }
    if dec.selected is not None:
        record["selected"] = dec.selected
    if dec.variants:
        record["decode_variants"] = {
            name: {"row": v["row"], "settings": v["settings"], "alpha": v["chosen"]["alpha"], "tau": v["chosen"]["tau"]}
            for name, v in dec.variants.items()
        }
    return record


def agrec_parts(dec: Any, scorer: str, scorers: Sequence[str]) -> dict[str, list[str]]:
    """Every AGRec row of a decode report and the rows it combines: the LM alone and its own scorer alone (the
    variants steer with the main ``scorer``; ``AGRec (selected)`` with its source row's scorer)."""
    names = {r["name"] for r in dec.rows}
    parts = {agrec_row(s): ["w/o Graph", only_row(s)] for s in dict.fromkeys([scorer, *scorers])}
    parts.update({v["row"]: ["w/o Graph", only_row(scorer)] for v in dec.variants.values()})
    for r in dec.rows:  # a row steered by two fused scorers has three parts
        if r["settings"].get("fused"):
            parts[r["name"]] = ["w/o Graph", *(only_row(s) for s in r["settings"]["fused"])]
    if dec.selected is not None:
        parts[dec.selected["row"]] = list(parts.get(dec.selected["source"], ["w/o Graph", only_row(scorer)]))
    return {row: against for row, against in parts.items() if row in names}


def _read_summary(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise AgrecError(f"{path}: not a CSV table of `agrec seeds` ({e})") from None
    need = ["method", "n_seeds", *(f"{m} {s}" for m in METRICS for s in ("mean", "sd"))]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise AgrecError(f"{path}: missing column(s) {missing} (not written by `agrec seeds`?)")
    if df.empty:
        raise AgrecError(f"{path}: the table has no rows (cut short?)")
    bad = [
        c
        for c in [*need[1:], *(c for c in df.columns if c.startswith("p "))]
        if not pd.api.types.is_numeric_dtype(df[c])
    ]
    if bad:
        raise AgrecError(f"{path}: column(s) {bad} hold values that are not numbers")
    if df["method"].duplicated().any():
        raise AgrecError(f"{path}: row(s) {sorted(set(df.loc[df['method'].duplicated(), 'method']))} appear twice")
    return df.set_index("method")


def _pooled_p(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    cols = [m for m in METRICS if f"p {m}" in df.columns]
    return {row: {m: float(df.loc[row, f"p {m}"]) for m in cols if pd.notna(df.loc[row, f"p {m}"])} for row in df.index}


def read_seeds(report_dir: str | Path, scorer: str = "lightgcn") -> SeedRows | None:
    """The ``agrec seeds`` aggregate of a report folder, or None where it has none. ``seeds/summary.csv`` tests
    ``AGRec (<scorer>)`` against every row; each ``seeds/vs_<slug>/summary.csv`` tests the row of that slug."""
    from agrec.run.seeds import MANIFEST_KIND, SEEDS_DIR, default_reference, reference_subdir

    root = Path(report_dir) / SEEDS_DIR
    main_path = root / "summary.csv"
    if not main_path.is_file():
        return None
    remedy = "rerun `agrec seeds --config <profile> --aggregate-only` (with the same --reference) to rewrite it"
    check_manifest(root, MANIFEST_KIND, ["summary.csv", "seeds.csv"], remedy)
    df = _read_summary(main_path)
    if default_reference(scorer) not in df.index:
        raise AgrecError(f"{main_path}: no row {default_reference(scorer)!r}, the reference of the main aggregate")
    seeds_path = root / "seeds.csv"
    try:
        seeds = [int(s) for s in pd.read_csv(seeds_path)["seed"]]
    except (OSError, KeyError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        raise AgrecError(
            f"{seeds_path}: expected the seeds of {main_path} in a 'seed' column (rerun `agrec seeds --aggregate-only`)"
        ) from None
    pooled = {default_reference(scorer): _pooled_p(df)}
    for sub_dir in sorted(root.glob("vs_*")):
        path = sub_dir / "summary.csv"
        if not path.is_file():
            continue
        check_manifest(sub_dir, MANIFEST_KIND, ["summary.csv"], remedy)
        other = _read_summary(path)
        refs = [row for row in other.index if reference_subdir(row) == sub_dir.name]
        if len(refs) != 1:
            raise AgrecError(f"{path}: no single row whose slug is {sub_dir.name[3:]!r} (found {refs})")
        pooled[refs[0]] = _pooled_p(other)
    alpha = {row: ("" if pd.isna(v) else str(v)) for row, v in df.get("alpha per seed", pd.Series(dtype=str)).items()}
    return SeedRows(
        seeds=seeds,
        mean={r: {m: float(df.loc[r, f"{m} mean"]) for m in METRICS} for r in df.index},
        sd={r: {m: float(df.loc[r, f"{m} sd"]) for m in METRICS} for r in df.index},
        n_seeds={r: int(df.loc[r, "n_seeds"]) for r in df.index},
        alpha=alpha,
        pooled_p=pooled,
    )


def run_labels(runs: Sequence[RunRows]) -> list[str]:
    """How each run is named in the tables: its dataset, or ``"<dataset> (<profile>)"`` where the runs hold that
    dataset under more than one profile (text and collaborative codes on Games, say)."""
    profiles: dict[str, set[str]] = {}
    for run in runs:
        profiles.setdefault(run.dataset, set()).add(run.profile)
    return [f"{r.dataset} ({r.profile})" if len(profiles[r.dataset]) > 1 else r.dataset for r in runs]


def complementarity_table(runs: Sequence[RunRows]) -> pd.DataFrame:
    """Per dataset run, the test users hit at 10 by the LM alone only, the GNN alone only, both and neither, with
    each part's HR@10 and the union's (what a perfect switch between the two would reach)."""
    recs = []
    for run, label in zip(runs, run_labels(runs), strict=True):
        c = run.complementarity
        if c is None:
            continue
        n = sum(c.values())
        recs.append(
            {
                "dataset": run.dataset,
                "profile": run.profile,
                "label": label,
                "users": n,
                **c,
                "LM HR@10": (c["LLM only"] + c["both"]) / n,
                "GNN HR@10": (c["GNN only"] + c["both"]) / n,
                "union HR@10": (n - c["neither"]) / n,
            }
        )
    return pd.DataFrame(
        recs,
        columns=[
            "dataset",
            "profile",
            "label",
            "users",
            *COMPLEMENTARITY_GROUPS,
            "LM HR@10",
            "GNN HR@10",
            "union HR@10",
        ],
    )


def complementarity_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return ""
    lines = [
        "| dataset | users | LM only | GNN only | both | neither | LM HR@10 | GNN HR@10 | union HR@10 |",
        "|---|" + "---:|" * 8,
    ]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['label']} | {r['users']:,} | {r['LLM only']:,} | {r['GNN only']:,} | {r['both']:,} | "
            f"{r['neither']:,} | {r['LM HR@10']:.4f} | {r['GNN HR@10']:.4f} | {r['union HR@10']:.4f} |"
        )
    return (
        "\n## Complementarity (test, hit@10)\n\nUsers whose test item the LM alone (α = 0) and the GNN alone rank "
        "in their top 10 (paper Fig. 1; the analysis stage's `results/analysis.json`). Union: the HR@10 of a "
        "perfect per-user switch between the two parts.\n\n" + "\n".join(lines) + "\n"
    )


def ours_rows(run: RunRows) -> list[tuple[str, str]]:
    """``(row name in decode.json, label in Table 2)`` of a run, in table order (rows it lacks are skipped)."""
    s = run.scorer
    want = [
        ("w/o Graph", "ours: LM alone (w/o Graph)"),
        (only_row(s), f"ours: {_display(s)} alone"),
        ("SASRec only", "ours: SASRec (full-softmax CE)"),
        (f"AGRec ({s})", f"ours: AGRec ({_display(s)})"),
    ]
    if s != "sasrec":
        want.append(("AGRec (sasrec)", "ours: AGRec (SASRec)"))
    # every other scorer of the run (another GNN, the LM's own item head "lm"): its own row, then its AGRec row
    listed = {name for name, _ in want}
    for name in run.rows:
        other = name[len("AGRec (") : -1] if name.startswith("AGRec (") else ""
        if other and "+" not in other and other != "selected" and name not in listed:
            want += [(only_row(other), f"ours: {_display(other)} alone"), (name, f"ours: AGRec ({_display(other)})")]
    # steered by two fused scorers
    want += [
        (name, f"ours: AGRec ({' + '.join(_display(x) for x in name[7:-1].split('+'))})")
        for name in run.rows
        if name.startswith("AGRec (") and "+" in name
    ]
    # variants kept as options with their own rows (e.g. per-level α) follow the main AGRec row
    want += [(name, f"ours: {name}") for name in run.rows if name.startswith("AGRec [")]
    # the configuration the profile ships: the best AGRec row on validation
    want.append(("AGRec (selected)", "ours: AGRec (selected)"))
    return [(name, label) for name, label in want if name in run.rows]


def _display(name: str) -> str:
    return DISPLAY.get(name, name)


def part_rows(run: RunRows, name: str) -> dict[str, str]:
    """The two parts of the AGRec row ``name``: ``{"LM": "w/o Graph", "scorer": "<its scorer> only" row}``."""
    if name == "AGRec (selected)" and run.selected is not None:
        name = run.selected["source"]  # its parts are those of the row it was selected from
    scorer = name[len("AGRec (") : -1] if name.startswith("AGRec (") else run.scorer  # variants steer with the main
    if "+" in scorer:  # two fused scorers: the stronger one on test is the part it must beat
        only = [only_row(s) for s in scorer.split("+") if only_row(s) in run.rows]
        best = max(only, key=lambda r: run.rows[r].get("NDCG@10", 0.0)) if only else only_row(scorer)
        return {"LM": "w/o Graph", "scorer": best}
    return {"LM": "w/o Graph", "scorer": only_row(scorer)}


def part_p_values(run: RunRows, name: str) -> dict[str, dict[str, float]]:
    """``{"LM": {metric: p}, "scorer": {metric: p}}`` of the AGRec row ``name`` against its two parts (the LM
    alone, its scorer alone), from the decode record: ``significance_parts`` (every AGRec row, written when the
    profile has decode variants) or, for the main row, ``significance_test`` (main AGRec vs every row)."""
    parts = part_rows(run, name)
    by_row = run.parts_p.get(name)
    if by_row is None and name == f"AGRec ({run.scorer})":
        by_row = run.p_values
    by_row = by_row or {}
    return {part: by_row.get(row, {}) for part, row in parts.items()}


P_COLUMNS: tuple[str, ...] = ("p vs LM HR@10", "p vs LM NDCG@10", "p vs scorer HR@10", "p vs scorer NDCG@10")
SD_COLUMNS: tuple[str, ...] = tuple(f"{m} sd" for m in METRICS)


def table2(runs: Sequence[RunRows], paper: dict[str, dict[str, dict[str, float | None]]] | None = None) -> pd.DataFrame:
    """Long table: dataset, row, source (ours / paper), HR@5 … NDCG@10, the chosen α of AGRec rows, and for every
    AGRec row (one per scorer, and the decode variants) the paired p-values against the LM alone and its scorer
    alone (HR@10, NDCG@10). The paper's rows of each run's dataset come after ours.

    A row the run's seed aggregate has (:class:`SeedRows`) gets the mean over its seeds, their sd (``<metric> sd``),
    their number (``seeds``), the α of each seed, and the pooled p-values of that aggregate; other rows are the
    one run, ``seeds`` = 1. ``source`` names the profile of our rows (``ours (<profile>)``), ``shown`` the name
    the markdown prints (:func:`run_labels`); where several runs share a dataset, the published rows of that dataset
    come once, after its last run."""
    paper = PAPER_ROWS if paper is None else paper
    # a dataset run under several profiles (e.g. two kinds of semantic IDs): its published rows once, after its last
    last_run = {run.dataset: i for i, run in enumerate(runs)}
    labels = run_labels(runs)
    recs = []
    for i, run in enumerate(runs):
        for name, label in ours_rows(run):
            is_agrec = name.startswith("AGRec (") or name.startswith("AGRec [")
            agg = run.seeds if run.seeds is not None and name in run.seeds.mean else None
            if agg is not None:
                pooled = agg.pooled_p.get(name, {})
                p = {part: pooled.get(row, {}) for part, row in part_rows(run, name).items()} if is_agrec else {}
                values, sds, n = agg.mean[name], agg.sd[name], agg.n_seeds[name]
                alpha: Any = agg.alpha.get(name) or None
            else:
                p = part_p_values(run, name) if is_agrec else {}
                values, sds, n = run.rows[name], {}, 1
                # each AGRec row at its own α (records before per-row choices: the main row's α for every scorer)
                alpha = run.row_alpha.get(
                    name, run.chosen.get("alpha") if name.startswith("AGRec (") else run.variant_alpha.get(name)
                )
            pcols = {
                f"p vs {part} {m}": p.get(part, {}).get(m) for part in ("LM", "scorer") for m in ("HR@10", "NDCG@10")
            }
            recs.append(
                {
                    "dataset": run.dataset,
                    "shown": labels[i],
                    "row": label,
                    "source": f"ours ({run.profile})",
                    "seeds": n,
                    **{m: values.get(m) for m in METRICS},
                    **{f"{m} sd": sds.get(m) for m in METRICS},
                    **pcols,
                    "alpha": alpha,
                    "bounds": _bounds({m: values.get(m) for m in METRICS}, None),
                }
            )
        for name, metrics in paper.get(run.dataset, {}).items() if last_run[run.dataset] == i else ():
            recs.append(
                {
                    "dataset": run.dataset,
                    "shown": run.dataset,
                    "row": f"paper: {name}",
                    "source": "paper",
                    "seeds": None,
                    **{m: metrics.get(m) for m in METRICS},
                    **{c: None for c in SD_COLUMNS},
                    **{c: None for c in P_COLUMNS},
                    "alpha": None,
                    "bounds": _bounds(metrics, 4),
                }
            )
    columns = ["dataset", "shown", "row", "source", "seeds", *METRICS, *SD_COLUMNS, *P_COLUMNS, "alpha", "bounds"]
    return pd.DataFrame(recs, columns=columns)


def _bounds(metrics: dict[str, float | None], decimals: int | None) -> str:
    """``ok``, the violated :data:`BOUNDS` joined by ``; ``, or empty where a metric is missing."""
    if any(metrics.get(m) is None for m in METRICS):
        return ""
    return "; ".join(bound_violations(metrics, decimals)) or "ok"


def history_note(dataset: str) -> str:
    """The protocol note of a dataset whose profile keeps history items rankable (``evaluation.exclude_history:
    false``)."""
    return (
        f"ours, {dataset}: history items are **not** excluded (evaluation.exclude_history: false, which the "
        "GNN-only and SASRec-only rows follow too): users revisit, so a target may be in its user's history "
        "(`agrec data check` counts them), and the paper's generative baselines mask no history item (docs/data.md, "
        '"Repeat visits")'
    )


def to_markdown(df: pd.DataFrame, extra_notes: Sequence[str] = ()) -> str:
    """The table as GitHub markdown (empty cells where a value is unknown) followed by the protocol notes
    (:data:`PROTOCOL_NOTES`, then ``extra_notes``)."""

    def num(v: Any) -> str:
        return "" if v is None or pd.isna(v) else f"{v:.4f}".lstrip("0")

    def value(r: Any, m: str) -> str:
        sd = r.get(f"{m} sd")
        return num(r[m]) + ("" if sd is None or pd.isna(sd) else f" ± {num(sd)}")

    def pv(v: Any) -> str:
        return "" if v is None or pd.isna(v) else ("<1e-4" if v < 1e-4 else f"{v:.2g}")

    def pair(r: Any, part: str) -> str:
        h, n = pv(r[f"p vs {part} HR@10"]), pv(r[f"p vs {part} NDCG@10"])
        return f"{h} / {n}" if h or n else ""

    def alpha(v: Any) -> str:
        if isinstance(v, str):
            return v  # one α per seed, as the seed aggregate wrote them
        if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)):
            return ""
        return "[" + ", ".join(f"{a:g}" for a in v) + "]" if isinstance(v, (list, tuple)) else f"{v:g}"

    def seeds(v: Any) -> str:
        return "" if v is None or pd.isna(v) else str(int(v))

    lines = [
        "| dataset | row | seeds | " + " | ".join(METRICS) + " | p vs LM (HR@10 / NDCG@10) | p vs its scorer "
        "alone (HR@10 / NDCG@10) | α | bounds |",
        "|---|---|" + "---:|" * (len(METRICS) + 4) + "---|",
    ]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['shown']} | {r['row']} | {seeds(r.get('seeds'))} | "
            + " | ".join(value(r, m) for m in METRICS)
            + f" | {pair(r, 'LM')} | {pair(r, 'scorer')} | {alpha(r['alpha'])} | {r.get('bounds') or ''} |"
        )
    notes = "\n".join(f"- {n}" for n in (*PROTOCOL_NOTES, *extra_notes))
    return (
        "\n".join(lines)
        + "\n\nseeds: 1 = one run (the profile's seed); more = mean ± sd (sample sd) over that many seeds "
        "(`agrec seeds`, the report's seeds/summary.csv), with p pooled over the seeds, the user as the unit "
        "(each user's outcome averaged over the seeds; exact sign test for HR@10, Wilcoxon signed-rank for "
        "NDCG@10) — for an AGRec row other than the profile's main one only where `agrec seeds --reference` "
        "has tested it. p for one run: paired tests of each AGRec row against its two parts, the LM alone "
        "(w/o Graph) and its scorer alone (the GNN, or SASRec), on the same test users (exact McNemar for "
        "HR@10, Wilcoxon signed-rank for NDCG@10). α: chosen on validation NDCG@10 (a list: one α per code "
        "level; with seeds: one per seed). bounds: what HR/NDCG@5/10 of one ranking per user with one relevant item "
        "must satisfy (a hit at rank r adds 1/log2(r+1) to NDCG; so N@5 <= H@5, N@5 >= H@5/log2 6, and "
        "(H@10-H@5)/log2 11 <= N@10-N@5 <= (H@10-H@5)/log2 7), checked within the rounding of the printed "
        "values; a published row that fails one was computed otherwise (another NDCG formula, or @5 and @10 "
        "from different rankings) or misprinted. Protocol:\n\n" + notes + "\n"
    )


def write_table2(configs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Read each profile's report folder, build :func:`table2` and write it as markdown (and CSV beside it).

    ``out`` defaults to ``<reports_dir>/table2.md`` of the first profile. Written atomically."""

    profiles = [load_profile(c) for c in configs]
    path = Path(out) if out else profiles[0].reports_root / "table2.md"
    if path.suffix != ".md" or path.is_dir():
        raise AgrecError(
            f"--out {out}: expected a markdown file name ending in .md (the CSV goes beside it as "
            f".csv){'; that is a folder' if path.is_dir() else ''}"
        )
    if not path.parent.is_dir():
        raise AgrecError(f"--out {out}: folder {path.parent} does not exist")
    seen: dict[Path, str] = {}
    for c, p in zip(configs, profiles, strict=True):
        if p.report_dir in seen:
            raise AgrecError(f"--config {c}: its report folder {p.report_dir} is --config {seen[p.report_dir]}'s too")
        seen[p.report_dir] = str(c)
    # one block per dataset, in the order the datasets first come, with its published rows after its last run
    order = list(dict.fromkeys(p.data.dataset for p in profiles))
    profiles = sorted(profiles, key=lambda p: order.index(p.data.dataset))
    runs = [
        read_run(
            p.report_dir,
            p.evaluation.scorer,
            dataset=p.data.dataset,
            profile=p.name if p.pipeline.variant is None else f"{p.name}/{p.pipeline.variant}",
        )
        for p in profiles
    ]
    df = table2(runs)
    kept = list(dict.fromkeys(history_note(p.data.dataset) for p in profiles if not p.evaluation.exclude_history))
    cmd = "agrec table2 " + " ".join(f"--config {c}" for c in configs)
    comp = complementarity_table(runs)
    cost = cost_table([(label, p.seed, p.report_dir) for label, p in zip(run_labels(runs), profiles, strict=True)])
    atomic_write_text(
        path,
        f"# Table 2, ours\n\n`{cmd}`\n\n"
        + to_markdown(df, kept)
        + complementarity_markdown(comp)
        + cost_markdown(cost),
    )
    atomic_write_text(path.with_suffix(".csv"), df.to_csv(index=False))
    return path
