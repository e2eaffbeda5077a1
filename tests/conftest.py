import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_PROFILE = ROOT / "configs" / "ml100k-ci.yaml"


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture
def lcrec_dir(tmp_path: Path) -> Path:
    """A small LC-Rec folder: 4 users, 5 items, with item text and codes."""
    write_json(tmp_path / "Toy.inter.json", {
        "0": [0, 1, 2, 3],
        "1": [1, 2, 4],
        "2": [4, 3, 2, 1, 0],
        "3": [0, 4],          # too short for leave-one-out: filtered and counted
    })
    write_json(tmp_path / "Toy.item.json", {
        str(i): {"title": f"Item {i}", "brand": "B", "categories": "Cat A, Cat B", "description": "d" * 600}
        for i in range(5)
    })
    write_json(tmp_path / "Toy.index.json", {
        str(i): [f"<a_{i % 2}>", f"<b_{i}>", "<c_0>", "<d_0>"] for i in range(5)
    })
    return tmp_path


@pytest.fixture
def killed_writer():
    """Run a process that dies by SIGKILL inside an atomic_dir block (``<folder>/ckpt/epoch-1``, 3 MiB) and an
    atomic_path block (``<folder>/table.csv``), so that no handler runs; returns its pid."""
    return _killed_writer


def _killed_writer(folder: Path) -> int:
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from agrec.io import atomic_dir, atomic_path\n"
        "folder = Path(sys.argv[1])\n"
        "with atomic_dir(folder / 'ckpt' / 'epoch-1') as d, atomic_path(folder / 'table.csv') as t:\n"
        "    (d / 'model.safetensors').write_bytes(b'w' * 3 * 2**20)\n"
        "    t.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)])
    assert proc.wait() == -9
    return proc.pid

