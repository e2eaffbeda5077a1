"""What each run of a report folder cost: wall time per stage, peak memory, and whether it ran alone.

Read from the ``results/pipeline.json`` that ``agrec run`` writes beside the report (:mod:`agrec.run.pipeline`,
:mod:`agrec.run.resources`), for the profile's own run and for each seed that ``agrec seeds`` ran into
``seeds/<seed>/``. Nothing is measured here. Reports written before the runner recorded resources have no
peak memory or other-work figure (shown empty). A stage the runner reused shows the seconds of the execution
that made its report; a stage whose notebook ran only to refresh its report, its artefacts already current
(computed by an earlier execution, maybe in another checkout), shows the seconds it took to load them. The
``reused`` column names both kinds (the second as "refreshed"); reports from before the runner recorded the
second kind cannot say it. A record that exists but cannot be read is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from agrec.errors import AgrecError
from agrec.io import read_json_file

STAGE_COLUMNS: tuple[str, ...] = ("data", "semantic_ids", "gnn", "lm", "decode", "analysis")


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def read_cost(report_dir: str | Path) -> dict[str, Any] | None:
    """The run record of one report folder: ``{"stages_s", "total_s", "stages_sum_s", "reused", "refreshed",
    "peak_rss_mib", "others_cpu_s", "steal_s"}``; None where the folder has no ``results/pipeline.json``.
    ``others_cpu_s`` and ``steal_s`` are sums over the executed stages, None unless every one of them measured it."""
    path = Path(report_dir) / "results" / "pipeline.json"
    if not path.is_file():
        return None
    d = read_json_file(path, "rerun `agrec run --config <profile>` to rewrite it")
    if not isinstance(d, dict) or not isinstance(d.get("stages_s"), dict):
        raise AgrecError(f"{path}: expected an object with a 'stages_s' object of stage -> seconds")
    raw = d.get("resources")
    resources: dict[str, Any] = raw if isinstance(raw, dict) else {}
    reused = [s for s in d.get("reused") or [] if isinstance(s, str)]
    refreshed = [s for s in d.get("refreshed") or [] if isinstance(s, str)]
    executed = [s for s in d["stages_s"] if s not in reused]

    def executed_sum(key: str) -> float | None:
        vals = [_number(u.get(key)) if isinstance(u, dict) else None for s, u in resources.items() if s not in reused]
        if executed and len(vals) == len(executed) and all(v is not None for v in vals):
            return sum(v for v in vals if v is not None)
        return None

    stages = {s: _number(v) for s, v in d["stages_s"].items()}
    return {
        "stages_s": stages,
        "total_s": _number(d.get("total_s")),
        # what the run costs when every stage is computed: a reused stage counts with the seconds of the execution
        # that made it, where total_s (the wall time of this `agrec run`) counts it as nothing
        "stages_sum_s": sum(v for v in stages.values() if v is not None)
        if stages and all(v is not None for v in stages.values())
        else None,
        "reused": reused,
        "refreshed": refreshed,
        "peak_rss_mib": _number(d.get("peak_rss_mib")),
        "others_cpu_s": executed_sum("others_cpu_s"),
        "steal_s": executed_sum("steal_s"),
    }


def cost_table(folders: Sequence[tuple[str, int, Path]]) -> pd.DataFrame:
    """One row per run: ``folders`` holds (dataset, the profile's seed, report folder); each folder's
    ``seeds/<seed>/`` runs are added after it. Seconds per stage, total, peak MiB, other work, steal, reused
    stages."""
    from agrec.run.seeds import SEEDS_DIR

    recs = []
    for dataset, seed, folder in folders:
        runs = [(str(seed), folder)]
        seeds_root = folder / SEEDS_DIR
        if seeds_root.is_dir():
            runs += sorted(
                ((p.name, p) for p in seeds_root.iterdir() if p.is_dir() and p.name.isdigit()),
                key=lambda t: int(t[0]),
            )
        for s, f in runs:
            c = read_cost(f)
            if c is None:
                continue
            recs.append(
                {
                    "dataset": dataset,
                    "seed": int(s),
                    **{st: c["stages_s"].get(st) for st in STAGE_COLUMNS},
                    "total_s": c["total_s"],
                    "stages_sum_s": c["stages_sum_s"],
                    "peak_rss_mib": c["peak_rss_mib"],
                    "others_cpu_s": c["others_cpu_s"],
                    "steal_s": c["steal_s"],
                    "reused": ", ".join(
                        [st for st in c["reused"] if st not in c["refreshed"]]
                        + [f"{st} (refreshed)" for st in c["refreshed"]]
                    ),
                }
            )
    return pd.DataFrame(
        recs,
        columns=[
            "dataset",
            "seed",
            *STAGE_COLUMNS,
            "total_s",
            "stages_sum_s",
            "peak_rss_mib",
            "others_cpu_s",
            "steal_s",
            "reused",
        ],
    )


def cost_markdown(df: pd.DataFrame) -> str:
    """The cost section of ``table2.md`` (empty when no run has a record)."""
    if df.empty:
        return ""

    def minutes(v: Any) -> str:
        return "" if v is None or pd.isna(v) else f"{v / 60:.1f}"

    lines = [
        "| dataset | seed | "
        + " | ".join(STAGE_COLUMNS)
        + " | total | sum of stages | peak GiB | other work (CPU min) | steal (min) | reused |",
        "|---|---:|" + "---:|" * (len(STAGE_COLUMNS) + 5) + "---|",
    ]
    for _, r in df.iterrows():
        peak = "" if r["peak_rss_mib"] is None or pd.isna(r["peak_rss_mib"]) else f"{r['peak_rss_mib'] / 1024:.2f}"
        lines.append(
            f"| {r['dataset']} | {r['seed']} | "
            + " | ".join(minutes(r[s]) for s in STAGE_COLUMNS)
            + f" | {minutes(r['total_s'])} | {minutes(r['stages_sum_s'])} | {peak} | {minutes(r['others_cpu_s'])} | "
            f"{minutes(r['steal_s'])} | "
            f"{r['reused']} |"
        )
    return (
        "\n## Cost (wall minutes per stage)\n\nFrom each run's `results/pipeline.json`. Total: the wall time of "
        "that `agrec run` (a reused stage adds nothing to it). Sum of stages: the stage columns added up, what the run "
        "costs computed from nothing (a reused stage counted with the minutes of the execution that made it). "
        "Peak: the largest stage kernel's peak resident "
        "memory. Other work: CPU minutes the machine spent on anything else while the executed stages ran (near "
        "0: they ran alone and their minutes measure them; otherwise they are upper bounds). Steal: CPU minutes the "
        "virtual machine's host ran something else while these cores were ready to run (0 on bare metal; "
        "not work on this machine, but wall time the stages waited). "
        "Empty: not recorded (a report from before these were). Reused: stages not executed (their minutes are "
        "those of the execution that made their report) or executed only to refresh the report, their artefacts "
        "already computed (their minutes are those of loading them); reports from before the second kind was "
        "recorded cannot name it.\n\n" + "\n".join(lines) + "\n"
    )
