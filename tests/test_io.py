import json
import re

import pytest

from agrec.errors import AgrecError
from agrec.io import atomic_dir, atomic_path, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.txt"]


def test_failed_write_leaves_nothing(tmp_path):
    p = tmp_path / "fig.png"
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            assert tmp.suffix == ".png"  # writers that infer the format from the suffix keep working
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_version(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "good")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("bad")
            raise RuntimeError
    assert p.read_text() == "good"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir(tmp_path):
    d = tmp_path / "ckpt"
    with atomic_dir(d) as tmp:
        (tmp / "w.bin").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(d) as tmp:
            (tmp / "w.bin").write_text("2")
            raise RuntimeError
    assert (d / "w.bin").read_text() == "1"
    with atomic_dir(d) as tmp:
        (tmp / "x.bin").write_text("3")
    assert sorted(x.name for x in d.iterdir()) == ["x.bin"]  # replaced whole, not merged
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]


def test_written_files_get_normal_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o644


def test_safetensors_bytes_do_not_depend_on_the_order_of_the_header(tmp_path):
    import torch
    from safetensors import safe_open

    from agrec.io import atomic_write_safetensors

    tensors = {"user_embedding": torch.arange(6.0).reshape(2, 3), "item_embedding": torch.ones(4, 3)}
    meta = {"model": "lightgcn", "config_hash": "55d19d42684b929d", "refit": json.dumps({"epochs": 3, "é": "ü\""})}
    blobs = set()
    for i in range(12):  # safetensors' own header order varies from one write to the next
        order = dict(sorted(meta.items(), reverse=bool(i % 2)))
        path = atomic_write_safetensors(tmp_path / f"w{i}.safetensors", tensors, order)
        blobs.add(path.read_bytes())
    assert len(blobs) == 1
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == meta
        assert all(torch.equal(f.get_tensor(k), v) for k, v in tensors.items())
    n = int.from_bytes(next(iter(blobs))[:8], "little")
    header = json.loads(next(iter(blobs))[8:8 + n])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(meta)


def test_check_format_accepts_its_range_and_names_every_refusal(tmp_path):
    from agrec.io import check_format

    p = tmp_path / "r.json"
    assert check_format(p, 2, "gnn results", newest=3, oldest=2) == 2
    with pytest.raises(AgrecError, match=r"r\.json: gnn results format 4 was written by a newer agrec \(this one reads "
                                         r"up to 3\); upgrade agrec, or rerun it$"):
        check_format(p, 4, "gnn results", newest=3, remedy="rerun it")
    with pytest.raises(AgrecError, match=r"gnn results format 1 is older than this agrec reads \(2\); rerun it$"):
        check_format(p, 1, "gnn results", newest=3, oldest=2, remedy="rerun it")
    for bad in (True, "2", 0, 1.0, None):
        with pytest.raises(AgrecError, match=rf"gnn results format {re.escape(repr(bad))} is not a positive integer$"):
            check_format(p, bad, "gnn results", newest=3)


def test_a_killed_writers_temporaries_carry_its_pid_and_only_they_are_swept(tmp_path, killed_writer):
    from agrec.io import orphan_writer, orphaned_temps, remove_orphaned_temps, temp_prefix, writer_tag

    (tmp_path / "table.csv").write_text("the previous version")
    pid = killed_writer(tmp_path)
    left = sorted(p for p in tmp_path.rglob(".*") if p.name.endswith((".tmp", ".tmp.csv")))
    host = writer_tag().split("@")[1]
    assert [p.parent for p in left] == [tmp_path, tmp_path / "ckpt"] and left[0].is_file() and left[1].is_dir()
    assert all(p.name.startswith((f".epoch-1.pid{pid}@{host}.", f".table.csv.pid{pid}@{host}.")) for p in left)
    assert [orphan_writer(p) for p in left] == [pid, pid]
    # what the sweep must leave: a live writer's (this process), another host's, names that are not ours
    own = tmp_path / f"{temp_prefix('a.csv')}x1y2z3w4.tmp.csv"
    other_host = tmp_path / f".b.csv.pid{pid}@{'0' * 8 if host != '0' * 8 else '1' * 8}.x1y2z3w4.tmp.csv"
    keep = [own, other_host, tmp_path / ".c.csv.x1y2z3w4.tmp.csv", tmp_path / f".notes.pid{pid}.txt"]
    for p in keep:
        p.write_text("x")
    (tmp_path / "link").symlink_to(left[1].parent, target_is_directory=True)
    assert orphaned_temps(tmp_path) == [left[0]]  # not recursive: the folder's own entries
    assert orphaned_temps(tmp_path, recursive=True) == left
    logs: list[str] = []
    assert remove_orphaned_temps(tmp_path, recursive=True, log=logs.append) == left
    assert not any(p.exists() for p in left) and all(p.exists() for p in keep)
    assert (tmp_path / "table.csv").read_text() == "the previous version" and (tmp_path / "ckpt").is_dir()
    assert logs == [
        f"removed {left[0]} (0.0 MiB): left by process {pid}, which is gone",
        f"removed {left[1]} (3.0 MiB): left by process {pid}, which is gone",
    ]
    assert remove_orphaned_temps(tmp_path, recursive=True) == []


def test_the_repository_ignores_a_killed_writers_temporaries_but_not_what_they_become():
    """A report folder copied while a stage was writing holds its temporary file; `git add reports/` must not take
    it (one was committed once). The pattern in .gitignore is checked against names this module makes."""
    import shutil
    import subprocess
    from pathlib import Path

    from agrec.io import temp_prefix

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(rel: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "--no-index", "-q", rel], cwd=root)
        assert done.returncode in (0, 1), f"git check-ignore failed on {rel}"
        return done.returncode == 0

    report = "reports/Games/p/seeds/2026"
    assert ignored(f"{report}/{temp_prefix('04_finetune.ipynb')}4x5jotn4.tmp.ipynb")
    assert ignored(f"{report}/results/{temp_prefix('decode.json')}k2j3h4g5.tmp.json")
    assert ignored(f"{report}/{temp_prefix('figures')}a1b2c3d4.tmp")  # a folder written whole
    assert ignored(f"{report}/.04_finetune.progress.jsonl")  # a running stage's events (agrec/run/pipeline.py)
    for kept in ("04_finetune.ipynb", "results/decode.json", "figures/alpha_curve.png", ".gitkeep"):
        assert not ignored(f"{report}/{kept}"), kept
