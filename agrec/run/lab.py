"""``make lab``: JupyterLab on the pipeline's notebooks, opened on a profile's cached stages.

The notebooks in ``notebooks/`` default to the CI-sized profile (their parameters cell). ``prepare_lab`` writes
copies of them with the chosen profile injected the way papermill injects it (an ``injected-parameters`` cell
after the parameters cell) into ``<runs_dir>/_lab/<dataset>/<profile>/`` (git-ignored), so that opening a copy
reuses that profile's current stages instead of recomputing the CI ones, and its figures/tables go to a scratch
``report/`` folder next to it, never over the committed report. Edit ``notebooks/`` for lasting changes.

``server_command`` is the JupyterLab command line ``make lab`` runs and the browser test starts: bound to
127.0.0.1 only, no token or password (anyone who can open a localhost port on this machine can use it, which is
the point of a local workbench; nothing else can reach it), no browser opened, no port hopping (a busy port is
an error, so the printed URL is the real one).

    python -m agrec.run.lab --config configs/ml100k-quick.yaml [--port 8888]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agrec.config import STAGE_NOTEBOOKS, load_profile
from agrec.errors import AgrecError, shorten
from agrec.io import atomic_path
from agrec.run.pipeline import default_notebooks_dir

ANALYSIS_NOTEBOOK = STAGE_NOTEBOOKS["analysis"]


def lab_dir(config_path: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """``<runs_dir>/_lab/<dataset>/<profile>``."""
    profile = load_profile(config_path, overrides)
    return profile.run_dir.parents[1] / "_lab" / profile.data.dataset / profile.name


def prepare_lab(
    config_path: str | Path,
    dest: Path | None = None,
    overrides: dict[str, Any] | None = None,
    notebooks_dir: Path | None = None,
    run_dir: str | Path | None = None,
) -> Path:
    """Write the stage notebooks with ``config_path`` (and ``overrides``, ``run_dir``) injected into ``dest``
    (default :func:`lab_dir`); returns ``dest``. Existing copies are replaced (they are generated)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    config_path = Path(config_path).resolve()
    load_profile(config_path, overrides)  # a bad profile fails here, not in six notebooks
    dest = Path(dest) if dest is not None else lab_dir(config_path, overrides)
    nb_dir = notebooks_dir or default_notebooks_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in STAGE_NOTEBOOKS.values():
        src = nb_dir / name
        if not src.is_file():
            raise AgrecError(f"make lab: notebook {src} not found")
        params: dict[str, Any] = {
            "config_path": os.path.relpath(config_path, dest),
            "overrides": dict(overrides or {}),
            "report_dir": "report",
        }
        if run_dir is not None:
            params["run_dir"] = str(Path(run_dir).resolve())
        nb = parameterize_notebook(load_notebook_node(str(src)), params)
        nb.metadata.pop("papermill", None)
        with atomic_path(dest / name) as tmp:
            nbformat.write(nb, tmp)
    return dest


def server_command(root: Path, port: int, python: str | None = None) -> list[str]:
    """The ``jupyter lab`` command line serving ``root`` on 127.0.0.1:``port`` without token or password."""
    return [
        python or sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--IdentityProvider.token=",
        "--PasswordIdentityProvider.hashed_password=",
        "--ServerApp.allow_remote_access=False",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ] + (["--ServerApp.allow_root=True"] if os.geteuid() == 0 else [])
    # (CI containers run as root; Jupyter refuses that unless told, and nothing is gained by refusing here.)


def port_number(text: str) -> int:
    """``--port``: an unprivileged TCP port (argparse turns the ValueError into a one-line usage error)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {shorten(text)}") from None
    if not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be in [1024, 65535] (unprivileged), got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m agrec.run.lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True)
    ap.add_argument("--port", type=port_number, default=8888, help="TCP port in [1024, 65535] (default 8888)")
    args = ap.parse_args(argv)
    try:
        root = prepare_lab(args.config)
    except AgrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"JupyterLab (localhost only, no token): http://127.0.0.1:{args.port}/lab/tree/{ANALYSIS_NOTEBOOK}", flush=True
    )
    print(f"  notebooks: copies of notebooks/ for {args.config} in {root} (stop with Ctrl-C)", flush=True)
    cmd = server_command(root, args.port)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
