"""The training entry point under torchrun: 2 CPU processes (gloo) reproduce a 1-process run."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd

from conftest import CI_PROFILE, ROOT

SETS = ["lm.codes=random", "lm.max_users=40", "lm.epochs=1", "lm.lr=3.0e-3", "lm.precision=fp32",
        "lm.tiny.hidden_size=32", "lm.tiny.num_layers=1", "lm.tiny.num_heads=2", "lm.tiny.num_kv_heads=2",
        "lm.tiny.intermediate_size=64", "lm.progress=false", "lm.num_threads=1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, run_dir, batch_size, extra=()):
    args = cmd + ["-m", "agrec.lm.train", "--config", str(CI_PROFILE), "--run-dir", str(run_dir)]
    for kv in SETS + list(extra) + [f"lm.batch_size={batch_size}"]:
        args += ["--set", kv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_two_gloo_processes_train_like_one_process_with_the_global_batch(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]
    out = _run(torchrun, tmp_path / "ddp", batch_size=4)
    assert "lm: done on 2 process(es)" in out
    # the 1-process reference runs in this process (saves a second interpreter start)
    from agrec.run.launch import parse_sets
    from agrec.lm.stage import train_lm
    from agrec.run.session import open_session

    session = open_session(CI_PROFILE, run_dir=tmp_path / "single", report_dir=tmp_path / "rep",
                           overrides=parse_sets(SETS + ["lm.batch_size=8"]))
    train_lm(session, load=False, log=lambda s: None)
    ddp_rec = json.loads((tmp_path / "ddp" / "lm" / "stage.json").read_text())
    one_rec = json.loads((tmp_path / "single" / "lm" / "stage.json").read_text())
    assert ddp_rec["world_size"] == 2 and one_rec["world_size"] == 1
    assert ddp_rec["steps"] == one_rec["steps"] > 5
    a = pd.read_csv(tmp_path / "ddp" / "lm" / "loss_curve.csv")
    b = pd.read_csv(tmp_path / "single" / "lm" / "loss_curve.csv")
    # same global batches, gradients averaged over the processes: the same run up to float rounding
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
    assert (a["supervised_tokens"] == b["supervised_tokens"]).all()
    va = pd.read_csv(tmp_path / "ddp" / "lm" / "val_curve.csv").iloc[-1]
    vb = pd.read_csv(tmp_path / "single" / "lm" / "val_curve.csv").iloc[-1]
    np.testing.assert_allclose(va["val_loss"], vb["val_loss"], rtol=1e-4)
    # one checkpoint, written once, loadable as a standard save_pretrained folder
    ck = tmp_path / "ddp" / "lm" / ddp_rec["checkpoint"]
    assert (ck / "model.safetensors").is_file() and (ck / "tokenizer.json").is_file()


class _Store:
    """The process group's key-value store as main_first_until uses it."""

    def __init__(self):
        self.keys = {}

    def set(self, key, value):
        self.keys[key] = value

    def check(self, keys):
        return all(k in self.keys for k in keys)


def _recording(rank, calls):
    from agrec.lm.distributed import DistEnv

    class Recording(DistEnv):
        def barrier(self):
            calls.append("barrier")

    return Recording(rank=rank, world=2)


def test_main_first_until_lets_the_other_ranks_poll_instead_of_waiting_in_a_timed_barrier():
    """Rank 0 trains the distillation teacher inside the block; the others must not sit in a barrier meanwhile
    (its timeout would end a run whose teacher trains for longer): they poll, then meet rank 0's barrier."""
    for rank, want in ((1, ["ready? no", "ready? no", "ready? yes", "barrier", "block"]), (0, ["block", "barrier"])):
        calls, answers = [], iter([False, False, True])

        def ready():
            ok = next(answers)
            calls.append("ready? yes" if ok else "ready? no")
            return ok

        with _recording(rank, calls).main_first_until(ready, poll_s=0, store=_Store()):
            calls.append("block")
        assert calls == want, rank


def test_main_first_until_stops_every_rank_when_rank_0_fails():
    import itertools

    import pytest

    import agrec.lm.distributed as distributed

    distributed._CALLS = itertools.count()      # both "ranks" below make their first call
    store, calls = _Store(), []
    with pytest.raises(ValueError, match="teacher diverged"):
        with _recording(0, calls).main_first_until(lambda: False, poll_s=0, store=store):
            raise ValueError("teacher diverged")
    assert calls == [] and list(store.keys.values()) == ["failed"]   # no barrier: its own error, at once
    distributed._CALLS = itertools.count()
    with pytest.raises(RuntimeError, match="rank 1: rank 0 failed in the block it runs first"):
        with _recording(1, calls).main_first_until(lambda: False, poll_s=0, store=store):
            calls.append("block")
    assert calls == []

    class Gone(_Store):
        def check(self, keys):
            raise RuntimeError("Connection reset by peer")

    with pytest.raises(RuntimeError, match="rank 0 is gone"):
        with _recording(1, calls).main_first_until(lambda: False, poll_s=0, store=Gone()):
            pass


def test_two_gloo_processes_distil_like_one_process(tmp_path):
    """lm.distill_teacher under torchrun: rank 0 trains SASRec while rank 1 waits for it, both read the same teacher,
    and the run equals the 1-process run with the global batch (that reuses the same teacher: same key)."""
    import shutil

    distil = ["lm.distill_teacher=sasrec", "lm.distill_weight=0.5"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]
    out = _run(torchrun, tmp_path / "ddp", batch_size=4, extra=distil)
    assert "lm: done on 2 process(es)" in out
    from agrec.run.launch import parse_sets
    from agrec.lm.stage import train_lm
    from agrec.run.session import open_session

    shutil.copytree(tmp_path / "ddp" / "baselines", tmp_path / "single" / "baselines")
    session = open_session(CI_PROFILE, run_dir=tmp_path / "single", report_dir=tmp_path / "rep",
                           overrides=parse_sets(SETS + distil + ["lm.batch_size=8"]))
    train_lm(session, load=False, log=lambda s: None)
    ddp_rec = json.loads((tmp_path / "ddp" / "lm" / "stage.json").read_text())
    one_rec = json.loads((tmp_path / "single" / "lm" / "stage.json").read_text())
    assert ddp_rec["world_size"] == 2 and ddp_rec["steps"] == one_rec["steps"] > 5
    assert ddp_rec["inputs"]["teacher:sasrec"] == one_rec["inputs"]["teacher:sasrec"]   # the one teacher, reused
    a = pd.read_csv(tmp_path / "ddp" / "lm" / "loss_curve.csv")
    b = pd.read_csv(tmp_path / "single" / "lm" / "loss_curve.csv")
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
