"""Run the decode stage from the command line, in one process or sharded over several.

    python -m agrec.decode.run --config configs/ml100k-quick.yaml
    torchrun --nproc_per_node 8 -m agrec.decode.run --config configs/instruments-llama1b.yaml

Every process runs the same stage function (:func:`agrec.decode.stage.evaluate_decoding`) on its shard of
the evaluated users (:mod:`agrec.decode.shard`; gloo on CPUs, NCCL on GPUs); rank 0 gathers the rankings
and writes ``results.json``, the rankings files and the stage record exactly as one process would. The
earlier stages must be done (or are computed, data-parallel for the LM, as ``agrec run`` would).
"""

from __future__ import annotations

import sys

from agrec.decode.stage import evaluate_decoding
from agrec.run.launch import stage_main
from agrec.lm.distributed import DistEnv
from agrec.run.session import Session


def _decode(session: Session, env: DistEnv, force: bool) -> None:
    report = evaluate_decoding(session, force=force, log=print if env.is_main else (lambda s: None))
    if env.is_main:
        print(
            f"decode: done on {env.world} process(es): {report.n_users} users, {report.seconds} s, "
            f"chose α={report.chosen['alpha']:g} τ={report.chosen['tau']:g}; {report.folder}"
        )


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").split("\n\n")[0]
    return stage_main(
        argv,
        "python -m agrec.decode.run",
        description,
        "evaluation.max_users=100",
        "decode again even if the stage is current",
        _decode,
    )


if __name__ == "__main__":
    sys.exit(main())
