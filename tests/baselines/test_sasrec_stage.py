"""SASRec training, scorer protocol and the cached stage under <run>/baselines/sasrec/."""

import hashlib
import json

import numpy as np
import pytest
import torch

from agrec.baselines.config import SASRecConfig
from agrec.baselines.sasrec import SASRec
from agrec.baselines.scorer import SASRecScorer, evaluate_sasrec
from agrec.baselines.stage import read_curves, read_metrics, sasrec_key, train_sasrec
from agrec.baselines.trainer import fit
from agrec.config import load_profile
from agrec.data.split import LeaveOneOutSplit
from agrec.errors import AgrecError, ConfigError
from agrec.run.session import open_session

from conftest import CI_PROFILE

N_ITEMS = 15
TINY_CFG = dict(hidden_size=8, n_heads=2, inner_size=16, max_seq_length=5, batch_size=32, epochs=3, eval_every=1,
                progress=False)
TINY = {f"baselines.sasrec.{k}": v for k, v in {**TINY_CFG, "train_stride": 5, "epochs": 2, "batch_size": 4096}.items()}


def toy_split(seed: int = 0, n_users: int = 30) -> LeaveOneOutSplit:
    rng = np.random.default_rng(seed)
    seqs = [rng.choice(N_ITEMS, size=int(rng.integers(4, 12)), replace=False) for _ in range(n_users)]
    return LeaveOneOutSplit(train=[s[:-2].astype(np.int64) for s in seqs],
                            valid=np.array([s[-2] for s in seqs], dtype=np.int64),
                            test=np.array([s[-1] for s in seqs], dtype=np.int64))


def trained(split: LeaveOneOutSplit, seed: int = 7) -> tuple[SASRec, object]:
    cfg = SASRecConfig(**TINY_CFG)
    m = SASRec(cfg, N_ITEMS, seed=seed)
    res = fit(m, split, cfg, seed, evaluate=lambda mm: evaluate_sasrec(SASRecScorer(mm, split), "valid", (5, 10)))
    return m, res


def test_scorer_inputs_valid_is_train_test_is_train_plus_valid_never_the_test_item():
    split = toy_split()
    model = SASRec(SASRecConfig(**TINY_CFG), N_ITEMS, seed=1)
    scorer = SASRecScorer(model, split)
    users = np.array([3, 0, 7])
    for target, histories in (("valid", [split.train[u] for u in users]),
                              ("test", [np.append(split.train[u], split.valid[u]) for u in users])):
        scores = scorer.score_users(users, target)
        assert scores.shape == (3, N_ITEMS) and scores.dtype == torch.float32
        expected = model.full_sort_predict(*model.encode_histories(histories))
        torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    # the test item is never read: other test items, the same scores
    other = LeaveOneOutSplit(train=split.train, valid=split.valid, test=(split.test + 1) % N_ITEMS)
    torch.testing.assert_close(SASRecScorer(model, other).score_users(users, "test"),
                               scorer.score_users(users, "test"), rtol=0, atol=0)
    assert scorer.score_users(np.array([], dtype=np.int64), "valid").shape == (0, N_ITEMS)
    with pytest.raises(AgrecError, match="target must be one of"):
        scorer.score_users(users, "train")
    with pytest.raises(AgrecError, match="user index 30 out of range"):
        scorer.score_users(np.array([30]), "valid")


def test_training_is_deterministic_never_reads_test_items_and_learns():
    split = toy_split()
    a, ra = trained(split)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    b, rb = trained(LeaveOneOutSplit(train=split.train, valid=split.valid, test=(split.test + 3) % N_ITEMS))
    # the global torch RNG is left as it was
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert ra.best_epoch == rb.best_epoch and ra.curves["loss"].tolist() == rb.curves["loss"].tolist()
    assert ra.epochs_run == 3 and len(ra.curves) == 3 and ra.n_targets == sum(len(t) - 1 for t in split.train)
    assert ra.curves["loss"].iloc[-1] < ra.curves["loss"].iloc[0]
    assert not a.training


class Interrupted(Exception):
    pass


def fit_with_checkpoint(split, path, key="k", stop_at_eval=None, log=None, seed=7):
    """fit() of the tiny SASRec with a checkpoint file; ``stop_at_eval``: raise in the n-th validation call
    (1-based), as a killed process would stop mid-training."""
    cfg = SASRecConfig(**{**TINY_CFG, "epochs": 5})
    m = SASRec(cfg, N_ITEMS, seed=seed)
    calls = []

    def evaluate(mm):
        calls.append(1)
        if stop_at_eval is not None and len(calls) == stop_at_eval:
            raise Interrupted
        return evaluate_sasrec(SASRecScorer(mm, split), "valid", (5, 10))

    res = fit(m, split, cfg, seed, evaluate=evaluate, checkpoint=path, key=key, log=(log or (lambda _: None)))
    return m, res, len(calls)


def test_an_interrupted_training_resumes_to_exactly_the_uninterrupted_weights(tmp_path):
    split = toy_split()
    ref, ref_res, ref_calls = fit_with_checkpoint(split, tmp_path / "ref.pt")
    assert ref_calls == 5 and ref_res.epochs_run == 5

    path = tmp_path / "resume.pt"
    with pytest.raises(Interrupted):
        fit_with_checkpoint(split, path, stop_at_eval=4)  # killed while validating epoch 4
    assert torch.load(path, weights_only=True)["epoch"] == 3  # the last finished epoch
    lines = []
    m, res, calls = fit_with_checkpoint(split, path, log=lines.append)
    assert calls == 2  # epochs 4 and 5 only
    assert lines == [f"sasrec: resuming after epoch 3 from {path}"]
    # Adam's moments, the best epoch so far and the curves come back too: the same weights, bit for bit
    assert all(torch.equal(x, y) for x, y in zip(m.state_dict().values(), ref.state_dict().values()))
    assert res.best_epoch == ref_res.best_epoch and res.best_valid == ref_res.best_valid
    assert res.curves.drop(columns="seconds").equals(ref_res.curves.drop(columns="seconds"))
    assert res.epochs_run == 5


def test_a_checkpoint_of_another_configuration_or_a_damaged_one_is_named_and_not_used(tmp_path):
    split = toy_split()
    fresh, fresh_res, _ = fit_with_checkpoint(split, tmp_path / "fresh.pt")
    path = tmp_path / "resume.pt"
    with pytest.raises(Interrupted):
        fit_with_checkpoint(split, path, key="old", stop_at_eval=3)
    lines = []
    m, res, calls = fit_with_checkpoint(split, path, key="new", log=lines.append)
    assert calls == 5 and lines == [f"sasrec: not resuming from {path}: written for configuration 'old', this one is 'new'"]
    assert all(torch.equal(x, y) for x, y in zip(m.state_dict().values(), fresh.state_dict().values()))

    path.write_bytes(path.read_bytes()[:100])  # truncated
    lines = []
    m, _, calls = fit_with_checkpoint(split, path, key="new", log=lines.append)
    assert calls == 5 and len(lines) == 1 and lines[0].startswith(f"sasrec: not resuming from {path}: unreadable")
    assert all(torch.equal(x, y) for x, y in zip(m.state_dict().values(), fresh.state_dict().values()))


def test_evaluation_masks_the_history_it_was_given():
    split = toy_split()
    model, _ = trained(split)
    scorer = SASRecScorer(model, split)
    masked = evaluate_sasrec(scorer, "test", (N_ITEMS,))
    # with every unseen item ranked, each test item (never in the history) is a hit
    assert masked[f"HR@{N_ITEMS}"] == 1.0


@pytest.fixture
def shared(tmp_path, lcrec_dir):
    """A run folder beside the 5-item toy dataset of conftest (fast: no MovieLens training)."""
    assert lcrec_dir == tmp_path
    return tmp_path


def session(root, **extra):
    data = {"data.format": "lcrec", "data.dataset": "Toy", "data.path": str(root),
            "data.require_text": False}
    return open_session(CI_PROFILE, run_dir=root / "run", report_dir=root / "rep", overrides={**TINY, **data, **extra})


def test_stage_trains_once_and_reuses(shared):
    s = session(shared)
    scorer = train_sasrec(s)
    folder = s.run.root / "baselines" / "sasrec"
    assert {p.name for p in folder.iterdir()} == {"weights.safetensors", "curves.csv", "metrics.json"}
    rec = read_metrics(s)
    assert rec["config_hash"] == sasrec_key(s) and rec["epochs_run"] == 2 and 1 <= rec["best_epoch"] <= 2
    assert set(rec["test"]) == set(rec["valid"]) >= {"HR@10", "NDCG@10"}
    assert len(read_curves(s)) == 2
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    users = np.arange(3)  # the toy data's users

    again = train_sasrec(session(shared, **{"baselines.sasrec.progress": True}))  # runtime keys: same key
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp
    torch.testing.assert_close(again.score_users(users, "test"), scorer.score_users(users, "test"), rtol=0, atol=0)
    assert {p.name for p in folder.iterdir()} == {"weights.safetensors", "curves.csv", "metrics.json"}

    changed = session(shared, **{"baselines.sasrec.hidden_dropout_prob": 0.2})
    assert read_metrics(changed) is None
    train_sasrec(changed)
    assert json.loads((folder / "metrics.json").read_text())["config_hash"] != rec["config_hash"]
    # the seed is part of the key
    assert sasrec_key(session(shared, seed=1)) != rec["config_hash"]


def test_stage_resumes_an_interrupted_training_under_its_key_and_force_starts_afresh(shared, monkeypatch):
    import agrec.baselines.stage as stage

    s = session(shared)
    ref = train_sasrec(s, force=True)
    ref_rec = read_metrics(s)
    folder = s.run.root / "baselines" / "sasrec"
    real_fit, seen = stage.fit, []

    def stopping_fit(*args, **kw):  # the stage's own fit, killed while validating its second epoch
        evaluate = kw["evaluate"]

        def ev(m):
            if len(seen) == 1:
                raise Interrupted
            seen.append(1)
            return evaluate(m)

        return real_fit(*args, **{**kw, "evaluate": ev})

    monkeypatch.setattr(stage, "fit", stopping_fit)
    with pytest.raises(Interrupted):
        train_sasrec(s, force=True)
    assert read_metrics(s) is None and torch.load(folder / "resume.pt", weights_only=True)["key"] == sasrec_key(s)
    monkeypatch.setattr(stage, "fit", real_fit)
    again = train_sasrec(s)
    assert {p.name for p in folder.iterdir()} == {"weights.safetensors", "curves.csv", "metrics.json"}
    rec = read_metrics(s)
    assert rec["weights_sha256"] == ref_rec["weights_sha256"] and rec["valid"] == ref_rec["valid"]
    users = np.arange(3)
    torch.testing.assert_close(again.score_users(users, "test"), ref.score_users(users, "test"), rtol=0, atol=0)

    # force: a stale training state is dropped, not continued
    (folder / "resume.pt").write_bytes(b"not a checkpoint")
    train_sasrec(s, force=True)
    assert not (folder / "resume.pt").exists() and read_metrics(s)["weights_sha256"] == ref_rec["weights_sha256"]


def test_profile_section_is_strict():
    assert load_profile(CI_PROFILE).baselines.sasrec.hidden_size > 0
    with pytest.raises(ConfigError, match="baselines.sasrec.hidden_size .* divisible by n_heads"):
        load_profile(CI_PROFILE, {"baselines.sasrec.n_heads": 3})
    with pytest.raises(ConfigError, match="baselines.sasrec.hiden_size"):
        load_profile(CI_PROFILE, {"baselines.sasrec.hiden_size": 3})


def test_damaged_weights_are_retrained_never_loaded(shared):
    s = session(shared)
    train_sasrec(s)
    folder = s.run.root / "baselines" / "sasrec"
    weights = folder / "weights.safetensors"
    good = weights.read_bytes()
    assert read_metrics(s)["weights_sha256"] == hashlib.sha256(good).hexdigest()
    weights.write_bytes(good[:-8] + b"\0" * 8)  # same size, damaged tail
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    train_sasrec(s)  # not loaded: retrained
    assert (folder / "metrics.json").stat().st_mtime_ns != stamp
    # the retrained weights are the original ones again (same seed, same data), and the record vouches for them
    assert weights.read_bytes() == good
    assert read_metrics(s)["weights_sha256"] == hashlib.sha256(good).hexdigest()


def test_training_reports_its_epochs_to_the_cli(tmp_path, monkeypatch):
    from agrec.progress import ENV_VAR

    events = tmp_path / "progress.jsonl"
    monkeypatch.setenv(ENV_VAR, str(events))
    _, res = trained(toy_split())
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    evaluated = [e for e in lines if e["event"] == "update" and e["milestone"]]
    assert [e["n"] for e in evaluated] == [1, 2, 3] and all(e["total"] == 3 for e in evaluated)  # eval_every 1
    assert all(e["task"] == "sasrec" and "valid_NDCG@10" in e["info"] for e in evaluated)
    assert lines[-1]["event"] == "end" and lines[-1]["info"] == {"best_epoch": res.best_epoch}
