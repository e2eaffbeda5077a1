"""Train the LM stage from the command line, in one process or data-parallel.

    python -m agrec.lm.train --config configs/ml100k-quick.yaml
    torchrun --nproc_per_node 8 -m agrec.lm.train --config configs/instruments-llama1b.yaml
    accelerate launch --multi_gpu --num_processes 8 -m agrec.lm.train --config configs/instruments-llama1b.yaml

Every process runs the same stage function (:func:`agrec.lm.stage.train_lm`); rank 0 prepares the
data and codes, writes checkpoints and the stage record. A later ``agrec run`` with the same profile
and overrides finds the stage done and reuses the trained model.
"""

from __future__ import annotations

import sys

from agrec.run.launch import stage_main
from agrec.lm.distributed import DistEnv
from agrec.lm.stage import STAGE, train_lm
from agrec.run.session import Session


def _train(session: Session, env: DistEnv, force: bool) -> None:
    train_lm(session, force=force, load=False)
    if env.is_main:
        rec = session.run.read_record(STAGE) or {}
        print(
            f"lm: done on {env.world} process(es): {rec.get('steps')} steps, "
            f"{rec.get('tokens_per_s')} tokens/s, checkpoint {session.run.root / STAGE / rec.get('checkpoint', '')}"
        )


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").split("\n\n")[0]
    return stage_main(argv, "python -m agrec.lm.train", description, "lm.epochs=2", "retrain from scratch", _train)


if __name__ == "__main__":
    sys.exit(main())
