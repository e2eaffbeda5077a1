"""Run the decode stage from the command line, in one process or sharded over several.

    python -m agrec.decode.run --config configs/ml100k-quick.yaml
    torchrun --nproc_per_node 8 -m agrec.decode.run --config configs/instruments-llama1b.yaml

Every process runs the same stage function (:func:`agrec.decode.stage.evaluate_decoding`) on its shard of
the evaluated users (:mod:`agrec.decode.shard`; gloo on CPUs, NCCL on GPUs); rank 0 gathers the rankings
and writes ``results.json``, the rankings files and the stage record exactly as one process would. The
earlier stages must be done (or are computed, data-parallel for the LM, as ``agrec run`` would).
"""

from __future__ import annotations

import argparse
import sys

from agrec.errors import AgrecError


def main(argv: list[str] | None = None) -> int:
    from agrec.cli import _parse_sets

    p = argparse.ArgumentParser(prog="python -m agrec.decode.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML profile")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile key, e.g. --set evaluation.max_users=100 (repeatable)",
    )
    p.add_argument("--run-dir", help="run directory (default: the profile's runs/<dataset>/<profile>)")
    p.add_argument("--force", action="store_true", help="decode again even if the stage is current")
    args = p.parse_args(argv)

    import torch.distributed as dist

    from agrec.decode.stage import evaluate_decoding
    from agrec.lm.distributed import init_distributed
    from agrec.session import open_session

    try:
        env = init_distributed()
        session = open_session(args.config, run_dir=args.run_dir, overrides=_parse_sets(args.sets))
        report = evaluate_decoding(session, force=args.force, log=print if env.is_main else (lambda s: None))
        if env.is_main:
            print(
                f"decode: done on {env.world} process(es): {report.n_users} users, {report.seconds} s, "
                f"chose α={report.chosen['alpha']:g} τ={report.chosen['tau']:g}; {report.folder}"
            )
    except AgrecError as e:
        print(f"agrec: error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
