"""How far apart, on validation, are the configurations the decode stage chose between? Read from finished runs.

    python benchmarks/selection_noise.py RUN_DIR [RUN_DIR ...] [--top 10] [--out NAME]

``AGRec (selected)`` is the validation-best of every decoded configuration (each AGRec row's α grid, the fused
row's weight x α grid, the parts alone). For the ``--top`` best validation rankings of each run's
``decode/rankings/*__valid.npz``, this prints the paired difference in NDCG@10 between the selected one and
each: mean, its standard error over users, and the Wilcoxon signed-rank p (``agrec.analysis.significance``).
A difference well inside its standard error means the validation sample does not separate the two, and the
choice between them is a coin toss the test set then judges. Nothing is decoded again.
Results: ``benchmarks/results/<out>.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agrec.analysis.significance import user_gains, wilcoxon_p
from agrec.decode.stage import load_rankings
from agrec.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
SELECTED = "agrec_selected"
PARTS = ("w_o_graph", "sasrec_only")  # the parts alone, listed whatever their rank (with every gnn_only_*)


def _load(decode_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One validation ranking, users in id order: ``(users [U], items [U, K], NDCG@10 per user [U])``."""
    z = load_rankings(decode_dir, name, "valid")  # a rankings file name is its row's slug, and slug(slug) = slug
    order = np.argsort(z["users"], kind="stable")
    items, targets = z["items"][order], z["targets"][order]
    return z["users"][order], items, user_gains(items, targets, ks=(10,))["NDCG@10"]


def run_table(run_dir: Path, top: int) -> list[str]:
    rankings = run_dir / "decode" / "rankings"
    files = sorted(rankings.glob("*__valid.npz"))
    if not any(f.name == f"{SELECTED}__valid.npz" for f in files):
        raise SystemExit(f"{rankings}: no {SELECTED}__valid.npz (a decode stage from before AGRec (selected)?)")
    users, sel_items, sel = _load(run_dir / "decode", SELECTED)
    # one line per distinct ranking: a row and its chosen grid point are the same ranking under two names
    distinct: list[tuple[list[str], np.ndarray, np.ndarray]] = []
    for f in files:
        name = f.name[: -len("__valid.npz")]
        u, items, g = _load(run_dir / "decode", name)
        if not np.array_equal(u, users):
            raise SystemExit(f"{f}: other validation users than {SELECTED}")
        same = next((d for d in distinct if np.array_equal(d[1], items)), None)
        if same is not None:
            same[0].append(name)
        else:
            distinct.append(([name], items, g))
    distinct.sort(key=lambda d: (-d[2].mean(), d[0][0]))
    shown = [d for i, d in enumerate(distinct) if i < top or any(n in PARTS or n.startswith("gnn_only_") for n in d[0])]
    lines = [
        f"### {run_dir}",
        "",
        f"{len(users):,} validation users; the {top} best distinct validation rankings, then the parts alone.",
        "",
        "| validation ranking (names of the same ranking) | NDCG@10 | selected − this | SE | Wilcoxon p |",
        "|---|---:|---:|---:|---:|",
    ]
    for names, items, g in shown:
        d = sel - g
        se = d.std(ddof=1) / np.sqrt(len(d))
        label = ", ".join(names) + (" (**selected**)" if np.array_equal(items, sel_items) else "")
        lines.append(f"| {label} | {g.mean():.4f} | {d.mean():+.4f} | {se:.4f} | {wilcoxon_p(d):.3g} |")
    return lines + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", type=Path, help="run folders whose decode stage is done")
    p.add_argument("--top", type=int, default=10, help="validation rankings per run, best first")
    p.add_argument("--out", default="selection_noise", help="file stem under benchmarks/results/")
    args = p.parse_args()
    body = ["# Selection noise: the selected configuration against its nearest rivals, on validation", ""]
    body.append("`python benchmarks/selection_noise.py " + " ".join(str(r) for r in args.run_dirs) + "`")
    body.append("")
    for run in args.run_dirs:
        body += run_table(run, args.top)
    text = "\n".join(body)
    atomic_write_text(RESULTS / f"{args.out}.md", text)
    print(text)


if __name__ == "__main__":
    main()
