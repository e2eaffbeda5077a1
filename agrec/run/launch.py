"""Command-line pieces shared by ``agrec`` and the per-stage launchers (``python -m agrec.lm.train``,
``python -m agrec.decode.run``, also under ``torchrun`` / ``accelerate launch``): ``--set KEY=VALUE``
overrides and the launcher's argument parsing, process group and error handling.

It sits below :mod:`agrec.cli`, so that a stage's launcher never imports the whole command line.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any, Callable

from agrec.config import load_yaml
from agrec.errors import AgrecError, ConfigError, shorten

if TYPE_CHECKING:
    from agrec.lm.distributed import DistEnv
    from agrec.run.session import Session

# A profile key: dotted identifiers, e.g. data.min_seq_len or gnn.lightgcn.n_layers.
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def split_item(item: str, option: str, example: str) -> tuple[str, str]:
    """``"data.min_seq_len=5"`` -> ``("data.min_seq_len", "5")``; a :class:`ConfigError` naming ``option``
    when there is no ``=`` or the key is not a dotted name."""
    if "=" not in item:
        raise ConfigError(f"{option} expects {example}, got {shorten(item)}")
    key, value = item.split("=", 1)
    key = key.strip()
    if not KEY.fullmatch(key):
        raise ConfigError(
            f"{option} {shorten(item)}: {shorten(key)} is not a profile key (dotted names such as data.min_seq_len)"
        )
    return key, value


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["seed=7", "data.min_seq_len=5"]`` -> ``{"seed": 7, "data.min_seq_len": 5}``; values are YAML
    (typed: 5 -> int, true -> bool, [a, b] -> list). Any malformed item is a :class:`ConfigError`."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = split_item(item, "--set", "KEY=VALUE (e.g. data.min_seq_len=5)")
        if key in out:
            raise ConfigError(f"--set: key {shorten(key)} is given twice")
        out[key] = load_yaml(value, source=f"--set {key}")
    return out


def add_set_option(parser: argparse.ArgumentParser, help: str = "override a profile key (repeatable)") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.sets``; :func:`parse_sets` reads them."""
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help=help)


def stage_main(
    argv: list[str] | None,
    prog: str,
    description: str,
    set_example: str,
    force_help: str,
    work: Callable[["Session", "DistEnv", bool], None],
) -> int:
    """The body of a stage launcher: parse ``--config``, ``--set``, ``--run-dir``, ``--force``; join the
    process group (one process when not launched by torchrun/accelerate); run ``work(session, env, force)``;
    print an :class:`AgrecError` as ``agrec: error: ...`` with exit status 2; always leave the process group."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", required=True, help="YAML profile")
    add_set_option(p, f"override a profile key, e.g. --set {set_example} (repeatable)")
    p.add_argument("--run-dir", help="run directory (default: the profile's runs/<dataset>/<profile>)")
    p.add_argument("--force", action="store_true", help=force_help)
    args = p.parse_args(argv)

    # imported here, not at the top: agrec.cli imports this module for parse_sets and must not import torch
    import torch.distributed as dist

    from agrec.lm.distributed import init_distributed
    from agrec.run.session import open_session

    try:
        env = init_distributed()
        session = open_session(args.config, run_dir=args.run_dir, overrides=parse_sets(args.sets))
        work(session, env, args.force)
    except AgrecError as e:
        print(f"agrec: error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
