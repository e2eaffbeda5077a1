"""Does a per-user signal choose α better than one global α? Measured on a finished decode stage.

    python benchmarks/user_alpha.py --config configs/instruments-cpu.yaml [--run-dir RUN] [--buckets 3]

For every AGRec row of ``evaluation.scorers`` whose α grid the decode stage decoded on test (see
``agrec.analysis.user_alpha``): the validation users are split into buckets by each signal (history length, the
LM's and the scorer's confidence, their top-10 agreement), each bucket takes its own α on validation, and the
test users ranked with their bucket's α are compared user by user with the row's one α. Nothing is decoded again:
the decode stage's rankings are read. Results: ``benchmarks/results/user_alpha_<dataset>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agrec.analysis.user_alpha import run_study
from agrec.data.stage import load_run_data
from agrec.io import atomic_write_json, atomic_write_text
from agrec.run.session import open_session

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--run-dir", type=Path, help="the run folder (default: the profile's)")
    p.add_argument("--buckets", type=int, default=3)
    args = p.parse_args()
    session = open_session(args.config, run_dir=args.run_dir)
    ev = session.profile.evaluation
    split = load_run_data(session).split
    out = run_study(
        session.run.root / "decode",
        np.array([len(h) for h in split.train]),
        ev.scorer,
        ev.scorers,
        ev.select_metric,
        args.buckets,
    )
    dataset = session.profile.data.dataset
    doc = {"config": str(args.config), "run": str(session.run.root), "buckets": args.buckets, "scorers": out}
    atomic_write_json(RESULTS / f"user_alpha_{dataset}.json", doc, indent=1)
    m = ev.select_metric
    k = m.partition("@")[2]
    lines = [
        f"# Per-user α against one global α: {dataset} (benchmarks/user_alpha.py)",
        "",
        f"`{args.config}`, {args.buckets} buckets at the validation signal's quantiles; test, paired "
        f"(Wilcoxon on {m}, exact McNemar on HR@{k}).",
        "",
    ]
    for scorer, e in out.items():
        lines += [
            f"## AGRec ({scorer}): global α {e['global_alpha']:g}",
            "",
            f"α with test rankings (the buckets choose among these): {', '.join(f'{a:g}' for a in e['grid'])}"
            + (f"; left out: {', '.join(f'{a:g}' for a in e['left_out'])}" if e["left_out"] else ""),
            "",
        ]
        if "table" not in e:
            lines += [f"Not measured: {e['skipped']} (grid with test rankings: {e['grid']}).", ""]
            continue
        lines += [
            f"| signal | α per bucket | test users per bucket | global α {m} | per-bucket α {m} | p | "
            f"global α HR@{k} | per-bucket α HR@{k} | p |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in e["table"]:
            lines.append(
                f"| {r['signal']} | {', '.join(f'{a:g}' for a in r['alpha per bucket'])} | "
                f"{', '.join(map(str, r['test users per bucket']))} | {r[f'global α {m}']:.4f} | "
                f"{r[f'per-bucket α {m}']:.4f} | {r[f'p {m}']:.2g} | {r[f'global α HR@{k}']:.4f} | "
                f"{r[f'per-bucket α HR@{k}']:.4f} | {r[f'p HR@{k}']:.2g} |"
            )
        lines.append("")
    atomic_write_text(RESULTS / f"user_alpha_{dataset}.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
