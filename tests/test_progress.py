"""agrec.progress: events written by a stage's Task, followed and printed by the runner."""

import io
import json
import os
import subprocess
import sys

from agrec.progress import ENV_VAR, Follower, Task, follow, format_event


def events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_task_is_a_no_op_without_the_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    t = Task("gnn", 4, "epoch")
    t.update(1, milestone=True)
    t.close()
    assert not t.enabled and list(tmp_path.iterdir()) == []


def test_task_writes_milestones_always_and_throttles_plain_updates(tmp_path):
    path = tmp_path / "p.jsonl"
    t = Task("lm", 100, "step", initial=10, min_interval_s=3600, path=path)
    t.update(11)                         # first write: nothing written before
    t.update(12)                         # within min_interval: dropped
    t.update(50, milestone=True, loss=0.123456)
    t.close(best=3)
    t.close()                            # once only
    ev = events(path)
    assert [(e["n"], e["event"], e["milestone"]) for e in ev] == [(11, "update", False), (50, "update", True),
                                                                  (50, "end", False)]
    assert ev[1]["info"] == {"loss": "0.1235"} and ev[2]["info"] == {"best": 3}
    assert ev[0]["total"] == 100 and ev[0]["unit"] == "step" and ev[0]["task"] == "lm"


def test_format_event_counts_rate_and_eta():
    ev = {"task": "lm", "unit": "step", "n": 40, "total": 120, "elapsed_s": 4.0, "rate": 10.0, "event": "update",
          "info": {"loss": "3.21"}}
    assert format_event(ev) == "lm: step 40/120 (33%), 10 step/s, 4.0 s elapsed, ETA 8.0 s, loss=3.21"
    end = {**ev, "n": 120, "event": "end", "elapsed_s": 754.0, "rate": 0.5, "info": {}}
    assert format_event(end) == "lm: step 120/120 (100%), 2 s/step, done in 12:34"
    resumed = {**end, "n0": 120, "rate": None}
    assert format_event(resumed) == "lm: step 120/120 (100%), nothing left to do (resumed from a checkpoint)"
    assert format_event({"task": "decode", "unit": "user", "n": 7, "total": None, "elapsed_s": 1.0,
                         "rate": None, "event": "update"}) == "decode: 7 users, 1.0 s elapsed"


def test_non_tty_prints_one_line_per_epoch_not_per_update(tmp_path):
    path, out = tmp_path / "p.jsonl", io.StringIO()
    f = Follower(path, out, tty=False, prefix="", heartbeat_s=3600)
    lm = Task("lm", 30, "step", min_interval_s=0, path=path)
    for step in range(1, 31):
        lm.update(step, milestone=step % 10 == 0)          # 3 epochs of 10 steps
    lm.close()
    assert f.poll() == 31
    lines = out.getvalue().splitlines()
    assert len(lines) == 4                                  # 3 epochs + the end, not 30 updates
    assert [ln.split(",")[0] for ln in lines] == ["lm: step 10/30 (33%)", "lm: step 20/30 (67%)",
                                                  "lm: step 30/30 (100%)", "lm: step 30/30 (100%)"]
    assert "done in" in lines[-1]


def test_non_tty_heartbeat_shows_a_task_without_milestones(tmp_path):
    path, out = tmp_path / "p.jsonl", io.StringIO()
    f = Follower(path, out, tty=False, prefix="", heartbeat_s=0.0)
    Task("decode", 100, "user", min_interval_s=0, path=path).update(40)
    f.poll()
    assert out.getvalue().startswith("decode: user 40/100 (40%)")


def test_tty_updates_in_place_and_ends_the_line(tmp_path):
    path, out = tmp_path / "p.jsonl", io.StringIO()
    f = Follower(path, out, tty=True, prefix="")
    t = Task("gnn", 2, "epoch", path=path)
    t.update(1, milestone=True)
    f.poll()
    assert out.getvalue().startswith("\rgnn: epoch 1/2 (50%)") and "\n" not in out.getvalue()
    t.update(2, milestone=True)
    t.close()
    f.finish()
    assert out.getvalue().count("\r") == 3 and out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_follower_waits_for_a_complete_line(tmp_path):
    path, out = tmp_path / "p.jsonl", io.StringIO()
    f = Follower(path, out, tty=False, prefix="")
    line = json.dumps({"task": "x", "unit": "epoch", "n": 1, "total": 2, "elapsed_s": 1, "rate": 1,
                       "event": "end", "milestone": False, "info": {}}) + "\n"
    path.write_text(line[:20])
    assert f.poll() == 0 and out.getvalue() == ""
    with open(path, "a") as fh:
        fh.write(line[20:])
    assert f.poll() == 1 and out.getvalue().startswith("x: epoch 1/2")


def test_follow_sets_the_env_var_for_child_processes_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    path, out = tmp_path / "p.jsonl", io.StringIO()
    child = ("from agrec.progress import Task\n"
             "with Task('gnn', 2, 'epoch') as t:\n"
             "    t.update(1, milestone=True); t.update(2, milestone=True)\n")
    with follow(path, out, tty=False, interval_s=0.05):
        assert os.environ[ENV_VAR] == str(path)
        subprocess.run([sys.executable, "-c", child], check=True, env={**os.environ})
    assert ENV_VAR not in os.environ and not path.exists()
    assert [ln.split(",")[0] for ln in out.getvalue().splitlines()] == [
        "    gnn: epoch 1/2 (50%)", "    gnn: epoch 2/2 (100%)", "    gnn: epoch 2/2 (100%)"]


def test_gnn_training_reports_one_milestone_per_epoch(tmp_path, monkeypatch):
    """The real trainer's hook: a small LightGCN for 3 epochs writes 3 epoch milestones and one end event."""
    from agrec.gnn.config import GNNTrainConfig, LightGCNConfig
    from agrec.gnn.graph import InteractionGraph
    from agrec.gnn.registry import build_model
    from agrec.gnn.trainer import fit
    from gnn.gnn_helpers import random_split

    path = tmp_path / "p.jsonl"
    monkeypatch.setenv(ENV_VAR, str(path))
    split = random_split()
    model = build_model("lightgcn", LightGCNConfig(embedding_dim=8), InteractionGraph.from_split(split, 30), seed=1)
    cfg = GNNTrainConfig(epochs=3, batch_size=64, eval_every=2, patience=10, progress=False)
    fit(model, split, cfg, seed=1)
    ev = events(path)
    assert [(e["task"], e["n"], e["total"], e["event"], e["milestone"]) for e in ev] == [
        ("lightgcn", 1, 3, "update", True), ("lightgcn", 2, 3, "update", True), ("lightgcn", 3, 3, "update", True),
        ("lightgcn", 3, 3, "end", False)]
    assert set(ev[1]["info"]) == {"loss", f"valid_{cfg.valid_metric}"}      # epoch 2 was evaluated
    assert set(ev[0]["info"]) == {"loss"}
