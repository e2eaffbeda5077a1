"""Command line: ``agrec run --config configs/ml100k-quick.yaml`` (also ``python -m agrec run``)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from agrec.errors import AgrecError, ConfigError, shorten
from agrec.run.launch import add_set_option, parse_sets, split_item


def parse_stages(text: str | None, option: str = "--stages") -> list[str] | None:
    """``"data, gnn"`` -> ``["data", "gnn"]`` (None -> None: the profile's stages). An empty list or name, an
    unknown stage and a stage named twice are each a :class:`ConfigError`, never "every stage" or "no stage"."""
    from agrec.config import STAGES

    if text is None:
        return None
    names = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise ConfigError(
            f"{option} {shorten(text)}: expected stage names separated by commas "
            f"({', '.join(STAGES)}); an empty name is not one"
        )
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ConfigError(f"{option}: unknown stage(s) {shorten(unknown)}; known stages: {', '.join(STAGES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{option} {shorten(text)}: a stage is named twice")
    return names


def _parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["decode.top_n=5,10"]`` -> ``{"decode.top_n": [5, 10]}`` (each value YAML, split on commas)."""
    from agrec.config import load_yaml

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, values = split_item(item, "--grid", "KEY=V1,V2,… (e.g. decode.top_n=5,10)")
        if key in grid:
            raise ConfigError(f"--grid: key {shorten(key)} is given twice; list all its values in one --grid")
        texts = [v.strip() for v in values.split(",") if v.strip()]
        if not texts:
            raise ConfigError(f"--grid {key}: no values (expected {key}=V1,V2,…)")
        if len(set(texts)) != len(texts):
            dup = next(t for t in texts if texts.count(t) > 1)
            raise ConfigError(f"--grid {key}: value {shorten(dup)} is listed twice")
        grid[key] = [load_yaml(v, source=f"--grid {key}") for v in texts]
    return grid


def _reuse_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reuse-only", action="store_true", help="compute nothing: fail with the reasons if a stage is not current"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="rehash every artefact before reusing it (default: sizes, and hashes of changed files)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agrec", description="AGRec workbench")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the pipeline's notebooks with papermill into reports/<dataset>/<profile>/")
    r.add_argument("--config", required=True, help="YAML profile, e.g. configs/ml100k-quick.yaml")
    r.add_argument("--stages", help="comma-separated subset of stages (default: the profile's pipeline.stages)")
    add_set_option(r, "override a profile key, e.g. --set seed=7 (repeatable)")
    r.add_argument("--force", action="store_true", help="recompute the stages even if their artefacts are current")
    _reuse_flags(r)
    rp = sub.add_parser("report", help="run every stage, export HTML and write index.md (the main job)")
    rp.add_argument("--config", required=True, help="YAML profile, e.g. configs/ml100k-quick.yaml")
    add_set_option(rp, "override a profile key (repeatable)")
    rp.add_argument("--force", action="store_true", help="recompute every stage")
    _reuse_flags(rp)
    st = sub.add_parser("status", help="one line per stage: current / stale (and why) / missing")
    st.add_argument("--config", required=True, help="YAML profile")
    add_set_option(st, "override a profile key (repeatable)")
    st.add_argument("--stages", help="comma-separated subset of stages (default: the profile's pipeline.stages)")
    st.add_argument(
        "--verify",
        action="store_true",
        help="rehash every artefact (default: sizes, and hashes of files whose modification time changed)",
    )
    cl = sub.add_parser(
        "clean", help="remove what killed writers left (temporary files and folders) in the run and report folders"
    )
    cl.add_argument("--config", required=True, help="YAML profile")
    add_set_option(cl, "override a profile key (repeatable)")
    cl.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    sw = sub.add_parser("sweep", help="run one stage's notebook over a parameter grid into reports/…/sweeps/<stage>/")
    sw.add_argument("--config", required=True, help="YAML profile")
    sw.add_argument("--stage", required=True, help="the stage whose notebook is swept, e.g. decode")
    sw.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,…",
        required=True,
        help="a profile key and its values, e.g. --grid decode.top_n=5,10,20 (repeatable: cartesian product)",
    )
    add_set_option(sw, "override a profile key for every point (repeatable)")
    sd = sub.add_parser(
        "seeds",
        help="run the pipeline once per seed and aggregate: mean ± sd and paired tests "
        "into reports/<dataset>/<profile>/seeds/",
    )
    sd.add_argument("--config", required=True, help="YAML profile, e.g. configs/ml100k-quick.yaml")
    sd.add_argument(
        "--seeds",
        help="a count N (the profile's seed and the next N-1, e.g. 5) or a comma-separated "
        "list of seeds (2024,7,11; '7,' for one); required unless --aggregate-only "
        "(then default: every seed with a finished decode stage)",
    )
    sd.add_argument("--stages", help="comma-separated subset of stages (default: the profile's pipeline.stages)")
    add_set_option(sd, "override a profile key for every seed (repeatable)")
    sd.add_argument("--force", action="store_true", help="recompute the stages even if their artefacts are current")
    sd.add_argument(
        "--aggregate-only",
        action="store_true",
        help="run nothing: rebuild the summary from the seeds whose decode stage has finished (in their run "
        "folders, or recorded in their reports' results/decode_outcomes.npz)",
    )
    sd.add_argument(
        "--reference",
        help="the row tested against the others (default: 'AGRec (<evaluation.scorer>)', "
        "written to seeds/; another row's aggregate goes to seeds/vs_<row slug>/)",
    )
    t2 = sub.add_parser(
        "table2",
        help="our Table 2: the decode results of several dataset runs beside the "
        "paper's published rows, with paired p-values",
    )
    t2.add_argument(
        "--config",
        dest="configs",
        action="append",
        required=True,
        help="a profile whose decode stage has run (repeatable, one per dataset)",
    )
    t2.add_argument("--out", help="markdown file to write (default: <reports_dir>/table2.md of the first profile)")
    dp = sub.add_parser("data", help="dataset tools")
    dsub = dp.add_subparsers(dest="data_command", required=True)
    dc = dsub.add_parser(
        "check",
        help="check a copy of an LC-Rec dataset against the registry of known datasets "
        "(checksums, statistics, codes, coverage); exit code 1 if anything differs",
    )
    dc.add_argument("--config", help="YAML profile whose data section names the dataset (data.dataset, data.path)")
    add_set_option(dc, "override a profile key (repeatable)")
    dc.add_argument(
        "--path", help="instead of --config: the folder with <dataset>.inter.json / .item.json / .index.json"
    )
    dc.add_argument("--dataset", help="with --path: the dataset name (the files' prefix)")
    dc.add_argument("--registry", help="registry file (default: agrec/data/registry.yaml)")
    sub.add_parser("info", help="print library versions")
    return p


def _data_check(args: argparse.Namespace) -> int:
    """``agrec data check``: print the report; 0 when everything recorded matches, 1 otherwise."""
    from agrec.data.check import check_lcrec, check_profile
    from agrec.data.registry import load_registry

    registry = load_registry(args.registry)
    if args.config:
        if args.path or args.dataset:
            raise AgrecError("agrec data check: give --config, or --path with --dataset, not both")
        from agrec.config import load_profile

        report = check_profile(load_profile(args.config, parse_sets(args.sets)), registry)
    elif args.path and args.dataset:
        if args.sets:
            raise AgrecError("agrec data check: --set needs --config")
        report = check_lcrec(args.path, args.dataset, registry)
    else:
        raise AgrecError("agrec data check: give --config PROFILE, or --path FOLDER with --dataset NAME")
    print(report.format(), end="")
    return 0 if report.ok else 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that temporary files are removed and kernels shut down."""


def _raise_terminated(signum, frame):  # noqa: ARG001 (signal handler signature)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agrec.run.runlock import describe_process

    describe_process(shlex.join(["agrec", *(sys.argv[1:] if argv is None else argv)]))
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        if args.command == "run":
            from agrec.run.pipeline import run_pipeline

            stages = parse_stages(args.stages)
            run_pipeline(
                args.config,
                stages=stages,
                overrides=parse_sets(args.sets),
                force=args.force,
                reuse_only=args.reuse_only,
                verify=args.verify,
            )
        elif args.command == "report":
            from agrec.run.pipeline import build_report

            build_report(
                args.config,
                overrides=parse_sets(args.sets),
                force=args.force,
                reuse_only=args.reuse_only,
                verify=args.verify,
            )
        elif args.command == "status":
            from agrec.run.pipeline import status

            stages = parse_stages(args.stages)
            results = status(args.config, overrides=parse_sets(args.sets), stages=stages, verify=args.verify)
            for r in results:
                print(r.line())
            return 0 if all(r.current for r in results) else 1
        elif args.command == "clean":
            from agrec.run.clean import clean

            clean(args.config, overrides=parse_sets(args.sets), dry_run=args.dry_run)
        elif args.command == "sweep":
            from agrec.run.pipeline import run_sweep

            summary = run_sweep(args.config, args.stage, _parse_grid(args.grid), overrides=parse_sets(args.sets))
            print(summary.to_string(index=False))
        elif args.command == "seeds":
            from agrec.config import load_profile
            from agrec.run.seeds import aggregate_seeds, parse_seeds, run_seeds

            overrides = parse_sets(args.sets)
            base = load_profile(args.config, overrides)
            seeds = parse_seeds(args.seeds, base.seed) if args.seeds else None
            if args.aggregate_only:
                summary = aggregate_seeds(args.config, seeds, overrides, reference=args.reference)
            else:
                if seeds is None:
                    raise AgrecError(
                        "agrec seeds: --seeds is required (a count such as 5, or 2024,7,11) unless --aggregate-only"
                    )
                stages = parse_stages(args.stages)
                summary = run_seeds(
                    args.config, seeds, stages=stages, overrides=overrides, force=args.force, reference=args.reference
                )
            if summary is not None:
                print((summary.folder / "summary.md").read_text())
        elif args.command == "table2":
            from agrec.analysis.table2 import write_table2

            path = write_table2(args.configs, args.out)
            print(path.read_text())
            print(f"written: {path}")
        elif args.command == "data":
            return _data_check(args)
        elif args.command == "info":
            from agrec.run.provenance import library_versions

            for k, v in library_versions().items():
                print(f"{k:24s} {v}")
    except AgrecError as e:
        print(f"agrec: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`agrec status | head -2`): stop quietly, as a Unix tool does. Python would
        # report the failed flush of stdout at exit, so stdout is pointed at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(
            f"agrec: {what}; finished stages are kept, the interrupted one left no record: rerun the same "
            f"command to continue from it",
            file=sys.stderr,
        )
        return 143 if isinstance(e, Terminated) else 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
