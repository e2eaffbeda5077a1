"""Train the LM stage from the command line, in one process or data-parallel.

    python -m agrec.lm.train --config configs/ml100k-quick.yaml
    torchrun --nproc_per_node 8 -m agrec.lm.train --config configs/instruments-llama1b.yaml
    accelerate launch --multi_gpu --num_processes 8 -m agrec.lm.train --config configs/instruments-llama1b.yaml

Every process runs the same stage function (:func:`agrec.lm.stage.train_lm`); rank 0 prepares the
data and codes, writes checkpoints and the stage record. A later ``agrec run`` with the same profile
and overrides finds the stage done and reuses the trained model.
"""

from __future__ import annotations

import argparse
import sys

from agrec.errors import AgrecError


def main(argv: list[str] | None = None) -> int:
    from agrec.cli import _parse_sets

    p = argparse.ArgumentParser(prog="python -m agrec.lm.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML profile")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile key, e.g. --set lm.epochs=2 (repeatable)",
    )
    p.add_argument("--run-dir", help="run directory (default: the profile's runs/<dataset>/<profile>)")
    p.add_argument("--force", action="store_true", help="retrain from scratch")
    args = p.parse_args(argv)

    import torch.distributed as dist

    from agrec.lm.distributed import init_distributed
    from agrec.lm.stage import STAGE, train_lm
    from agrec.session import open_session

    try:
        env = init_distributed()
        session = open_session(args.config, run_dir=args.run_dir, overrides=_parse_sets(args.sets))
        train_lm(session, force=args.force, load=False)
        if env.is_main:
            rec = session.run.read_record(STAGE) or {}
            print(
                f"lm: done on {env.world} process(es): {rec.get('steps')} steps, "
                f"{rec.get('tokens_per_s')} tokens/s, checkpoint {session.run.root / STAGE / rec.get('checkpoint', '')}"
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
