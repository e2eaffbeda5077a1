import json
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
