"""Our Table 2: the decode stage's test rows of several dataset runs beside the paper's published rows.

Each run contributes the rows that answer "does graph reasoning pay off here": the LM alone
(``w/o Graph``), the GNN alone (``GNN only (<scorer>)``), ``SASRec only`` when the profile trained it, and
``AGRec (<scorer>)`` at the α chosen on validation, with the paired p-values of AGRec against each row that the
decode stage recorded (:mod:`agrec.analysis.significance`: exact McNemar for HR@K, Wilcoxon signed-rank for
NDCG@K). Every number is read from a report folder's ``results/decode.json`` (what ``agrec run`` wrote), never
recomputed here.

The paper's rows (``PAPER_ROWS``) carry only values we could verify against the paper's text; the others are
left empty rather than copied from memory. The protocol differences are part of the table's caption
(:data:`PROTOCOL_NOTES`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from agrec.errors import AgrecError

METRICS: tuple[str, ...] = ("HR@5", "NDCG@5", "HR@10", "NDCG@10")

# Published rows of AGRec's Table 2 (Wang et al., ACL Findings 2025), test split, Llama-3.2-1B backbone for
# AGRec. Only the values we could check against the paper's text are filled in; None = not verified here.
PAPER_ROWS: dict[str, dict[str, dict[str, float | None]]] = {
    "Instruments": {
        "TIGER": {"HR@5": None, "NDCG@5": None, "HR@10": 0.1058, "NDCG@10": 0.0797},
        "AGRec (Llama-3.2-1B)": {"HR@5": None, "NDCG@5": None, "HR@10": 0.1260, "NDCG@10": 0.0950},
    },
}

PROTOCOL_NOTES: tuple[str, ...] = (
    "ours: the authors' public inter/index files (leave-one-out, last item = test), full ranking over all items "
    "with each user's history excluded; a 4-layer x 128 Llama trained from scratch on the given codes (1.2 M "
    "parameters) instead of LoRA on Llama-3.2-1B; LightGCN 64-d; α chosen on validation NDCG@10, never on test",
    "ours: at test time the GNN also propagates over the user's validation interaction (the LM's test prompt "
    "contains it); the paper's released code fits LightGCN on train + validation and picks its epoch on test",
)


@dataclass
class RunRows:
    """The rows of one dataset run read from its report folder."""

    dataset: str
    profile: str
    folder: Path
    rows: dict[str, dict[str, float]]        # row name -> test metrics
    p_values: dict[str, dict[str, float]]    # row name -> metric -> p of AGRec vs that row
    chosen: dict[str, Any]
    n_users: int
    scorer: str


def read_run(report_dir: str | Path, scorer: str = "lightgcn") -> RunRows:
    """The decode results of one report folder (``<reports>/<dataset>/<profile>``)."""
    folder = Path(report_dir)
    path = folder / "results" / "decode.json"
    if not path.is_file():
        raise AgrecError(f"{path}: no decode results (run the pipeline's decode stage for this profile first)")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise AgrecError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    rows = d.get("rows")
    if not isinstance(rows, dict) or not rows:
        raise AgrecError(f"{path}: expected a non-empty 'rows' object of row name -> {{valid, test}} metrics")
    test = {}
    for name, r in rows.items():
        if not isinstance(r, dict) or not isinstance(r.get("test"), dict):
            raise AgrecError(f"{path}: row {name!r} has no test metrics")
        test[name] = r["test"]
    return RunRows(dataset=folder.parent.name, profile=folder.name, folder=folder, rows=test,
                   p_values=d.get("significance_test") or {}, chosen=d.get("chosen") or {},
                   n_users=int(d.get("n_users", 0)), scorer=scorer)


def ours_rows(run: RunRows) -> list[tuple[str, str]]:
    """``(row name in decode.json, label in Table 2)`` of a run, in table order (rows it lacks are skipped)."""
    s = run.scorer
    want = [("w/o Graph", "ours: LM alone (w/o Graph)"), (f"GNN only ({s})", f"ours: {_display(s)} alone"),
            ("SASRec only", "ours: SASRec (full-softmax CE)"), (f"AGRec ({s})", f"ours: AGRec ({_display(s)})")]
    # variants kept as options with their own rows (e.g. per-level α) follow the main AGRec row
    want += [(name, f"ours: {name}") for name in run.rows if name.startswith("AGRec [")]
    return [(name, label) for name, label in want if name in run.rows]


def _display(name: str) -> str:
    return {"lightgcn": "LightGCN", "sgl": "SGL", "xsimgcl": "XSimGCL", "sasrec": "SASRec"}.get(name, name)


def table2(runs: Sequence[RunRows], paper: dict[str, dict[str, dict[str, float | None]]] | None = None) -> pd.DataFrame:
    """Long table: dataset, row, source (ours / paper), HR@5 … NDCG@10, and p (AGRec vs the row, HR@10 /
    NDCG@10) for our rows. The paper's rows of each run's dataset come after ours."""
    paper = PAPER_ROWS if paper is None else paper
    recs = []
    for run in runs:
        main = f"AGRec ({run.scorer})"
        for name, label in ours_rows(run):
            p = run.p_values.get(name, {}) if name != main else {}
            recs.append({"dataset": run.dataset, "row": label, "source": f"ours ({run.profile})",
                         **{m: run.rows[name].get(m) for m in METRICS},
                         "p HR@10": p.get("HR@10"), "p NDCG@10": p.get("NDCG@10"),
                         "alpha": run.chosen.get("alpha") if name == main else None})
        for name, metrics in paper.get(run.dataset, {}).items():
            recs.append({"dataset": run.dataset, "row": f"paper: {name}", "source": "paper",
                         **{m: metrics.get(m) for m in METRICS}, "p HR@10": None, "p NDCG@10": None, "alpha": None})
    return pd.DataFrame(recs, columns=["dataset", "row", "source", *METRICS, "p HR@10", "p NDCG@10", "alpha"])


def to_markdown(df: pd.DataFrame) -> str:
    """The table as GitHub markdown (empty cells where a value is unknown) followed by the protocol notes."""
    def num(v: Any) -> str:
        return "" if v is None or pd.isna(v) else f"{v:.4f}".lstrip("0")

    def pv(v: Any) -> str:
        return "" if v is None or pd.isna(v) else ("<1e-4" if v < 1e-4 else f"{v:.3g}")

    lines = ["| dataset | row | " + " | ".join(METRICS) + " | p HR@10 | p NDCG@10 | α |",
             "|---|---|" + "---:|" * (len(METRICS) + 3)]
    for _, r in df.iterrows():
        a = "" if r["alpha"] is None or pd.isna(r["alpha"]) else f"{r['alpha']:g}"
        lines.append(f"| {r['dataset']} | {r['row']} | " + " | ".join(num(r[m]) for m in METRICS)
                     + f" | {pv(r['p HR@10'])} | {pv(r['p NDCG@10'])} | {a} |")
    notes = "\n".join(f"- {n}" for n in PROTOCOL_NOTES)
    return ("\n".join(lines) + "\n\np: paired tests of our AGRec row against that row on the same test users "
            "(exact McNemar for HR@10, Wilcoxon signed-rank for NDCG@10). Protocol:\n\n" + notes + "\n")


def write_table2(configs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Read each profile's report folder, build :func:`table2` and write it as markdown (and CSV beside it).

    ``out`` defaults to ``<reports_dir>/table2.md`` of the first profile. Written atomically."""
    from agrec.config import load_profile
    from agrec.io import atomic_write_text

    profiles = [load_profile(c) for c in configs]
    runs = [read_run(p.report_dir, p.evaluation.scorer) for p in profiles]
    df = table2(runs)
    path = Path(out) if out else profiles[0].reports_root / "table2.md"
    cmd = "agrec table2 " + " ".join(f"--config {c}" for c in configs)
    atomic_write_text(path, f"# Table 2, ours\n\n`{cmd}`\n\n" + to_markdown(df))
    atomic_write_text(path.with_suffix(".csv"), df.to_csv(index=False))
    return path
