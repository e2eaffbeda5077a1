"""The lm stage: train, record, reuse, the LMBundle contract, and the GPU profiles on a stand-in."""

import json
import shutil

import numpy as np
import pytest
import torch

from agrec.config import load_profile
from agrec.errors import AgrecError
from agrec.lm.stage import load_lm, train_lm, training_curves
from agrec.semantic_ids.codes import CodeTable, parse_code_token
from agrec.run.session import open_session

from conftest import CI_PROFILE, ROOT
from lm_helpers import make_standin_checkpoint

SMALL = {"lm.max_users": 30, "lm.tiny.hidden_size": 32, "lm.tiny.intermediate_size": 64, "lm.batch_size": 16}
quiet = dict(log=lambda s: None)


def session(tmp_path, **overrides):
    return open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep",
                        overrides={**SMALL, **overrides})


def test_stage_trains_records_reuses_and_hands_on_a_decodable_bundle(tmp_path):
    s = session(tmp_path)
    with pytest.raises(AgrecError, match="no trained LM"):
        load_lm(s)
    bundle = train_lm(s, **quiet)
    rec = s.run.read_record("lm")
    assert rec["checkpoint"] == "checkpoints/epoch-001" and rec["world_size"] == 1
    assert rec["params"]["trainable"] == rec["params"]["total"] > 0  # tiny: full fine-tuning
    assert rec["tokens_per_s"] > 0 and set(rec["final_eval"]) >= {"val_loss", "val_acc_l0", "val_item_acc"}
    steps, evals = training_curves(s)
    assert len(steps) == rec["steps"] and list(evals["epoch"]) == [1]
    # the LMBundle contract of the decoder
    n_levels = bundle.codes.n_levels
    assert bundle.item_token_ids.dtype == torch.long and bundle.item_token_ids.shape == (1682, n_levels)
    assert bundle.tokenizer.convert_ids_to_tokens(bundle.item_token_ids[0].tolist()) == bundle.codes.item_tokens(0)
    history = list(range(30))
    ids = bundle.prompt_ids(history)
    assert ids == [bundle.tokenizer.bos_token_id] + bundle.item_token_ids[10:30].reshape(-1).tolist()  # capped at 20
    x = torch.tensor([ids])
    with torch.no_grad():
        out = bundle.model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True)
        nxt = bundle.item_token_ids[5, :1].view(1, 1)
        step = bundle.model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
        full = bundle.model(input_ids=torch.cat([x, nxt], 1))
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], rtol=1e-4, atol=1e-4)
    # cached: the record is not rewritten, not even when only bookkeeping keys change
    stamp = s.run.record_path("lm").stat().st_mtime_ns
    again = train_lm(session(tmp_path, **{"lm.progress": True, "lm.log_every": 3}), **quiet)
    assert s.run.record_path("lm").stat().st_mtime_ns == stamp
    assert torch.equal(again.model.get_input_embeddings().weight, bundle.model.get_input_embeddings().weight)
    # a change that matters retrains
    train_lm(session(tmp_path, **{"lm.lr": 1.0e-3}), **quiet)
    assert s.run.record_path("lm").stat().st_mtime_ns != stamp


def test_same_seed_same_model_other_seed_other_model(tmp_path):
    a = train_lm(session(tmp_path / "a"), **quiet)
    b = train_lm(session(tmp_path / "b"), **quiet)
    c = train_lm(session(tmp_path / "c", seed=7), **quiet)
    wa, wb, wc = (m.model.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_gpu_profiles_load_and_train_a_step_on_a_standin(tmp_path, lcrec_dir):
    for p in ("instruments", "arts", "games", "yelp"):
        prof = load_profile(ROOT / "configs" / f"{p}-llama1b.yaml")
        assert prof.lm.backbone == "path:../models/Llama-3.2-1B" and prof.lm.finetune_mode == "lora"
        assert (prof.lm.lora.r, prof.lm.lora.alpha, prof.lm.lr, prof.lm.epochs) == (16, 32, 1.0e-4, 4)
    standin = make_standin_checkpoint(tmp_path / "Llama-3.2-1B-standin")
    s = open_session(ROOT / "configs" / "instruments-llama1b.yaml", dataset="Toy", data_dir=lcrec_dir,
                     run_dir=tmp_path / "run", report_dir=tmp_path / "rep",
                     overrides={"lm.backbone": f"path:{standin}", "lm.max_steps": 1, "lm.batch_size": 2,
                                "lm.progress": False, "lm.num_threads": 1})
    from agrec.data.stage import prepare_data

    ds, _ = prepare_data(s)
    rows = [[parse_code_token(t)[1] for t in toks] for toks in ds.item_codes]
    codes = CodeTable(codes=rows, codebook_sizes=tuple(int(c) + 1 for c in np.max(rows, 0)))
    bundle = train_lm(s, codes=codes, **quiet)
    rec = s.run.read_record("lm")
    assert rec["steps"] == 1 and rec["precision"] == "bf16" and rec["params"]["trainable"] < rec["params"]["total"]
    assert next(bundle.model.parameters()).dtype == torch.bfloat16
    text = bundle.tokenizer.decode(bundle.prompt_ids([0, 1]))
    assert text.endswith("### Response:") and "<a_0><b_0><c_0><d_0>, <a_1><b_1><c_0><d_0>" in text


def test_distillation_trains_the_profiles_sasrec_first_and_keys_the_lm_on_it(tmp_path):
    from agrec.baselines.stage import read_metrics, sasrec_dir, train_sasrec
    from agrec.lm.stage import stage_key

    fast = {"baselines.sasrec.epochs": 1, "baselines.sasrec.hidden_size": 16, "baselines.sasrec.inner_size": 32}
    s = session(tmp_path, **{"lm.distill_teacher": "sasrec", **fast})
    train_lm(s, **quiet)
    teacher = read_metrics(s)
    assert teacher is not None and teacher["epochs_run"] == 1  # trained here, before the LM, under <run>/baselines
    rec = s.run.read_record("lm")
    assert rec["config"]["lm"]["distill_teacher"] == "sasrec"
    # the decode stage gets the same SASRec back, without training it again
    stamp = (sasrec_dir(s) / "metrics.json").stat().st_mtime_ns
    train_sasrec(s, progress=False)
    assert (sasrec_dir(s) / "metrics.json").stat().st_mtime_ns == stamp
    # another teacher is another LM: the key holds the teacher's; without a teacher, the teacher is not in it
    codes = load_lm(s).codes
    other = session(tmp_path, **{"lm.distill_teacher": "sasrec", **fast, "baselines.sasrec.hidden_size": 8})
    plain, plain_other = session(tmp_path, **fast), session(tmp_path, **{**fast, "baselines.sasrec.hidden_size": 8})
    assert stage_key(other, codes) != stage_key(s, codes) != stage_key(plain, codes) == stage_key(plain_other, codes)
    # a teacher retrained to other weights makes the LM stale, naming why; a teacher discarded (with the decode
    # stage's folders) cannot be checked and changes nothing
    from agrec.run.lineage import config_key, stage_status

    assert stage_status(s.profile, s.run, "lm", config_key(s.profile, "lm")).current
    metrics = sasrec_dir(s) / "metrics.json"
    rec = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**rec, "weights_sha256": "0" * 64}))
    st = stage_status(s.profile, s.run, "lm", config_key(s.profile, "lm"))
    assert not st.current and st.reasons == [
        "the distillation teacher (sasrec, <run>/baselines/sasrec) was retrained to other weights"
    ]
    shutil.rmtree(sasrec_dir(s))
    assert stage_status(s.profile, s.run, "lm", config_key(s.profile, "lm")).current


def test_item_init_teacher_starts_the_lms_item_vectors_from_the_trained_sasrec(tmp_path, monkeypatch):
    import agrec.lm.stage as stage
    from agrec.baselines.stage import train_sasrec
    from agrec.lm.distill import sasrec_item_vectors

    seen = []
    real = stage.init_item_embedding
    monkeypatch.setattr(stage, "init_item_embedding", lambda model, vectors: seen.append(vectors) or real(model, vectors))
    fast = {"baselines.sasrec.epochs": 1, "baselines.sasrec.hidden_size": 16, "baselines.sasrec.inner_size": 32}
    s = session(tmp_path, **{"lm.distill_teacher": "sasrec", "lm.tiny.item_embedding": True,
                             "lm.tiny.item_init": "teacher", **fast})
    train_lm(s, **quiet)
    sasrec = train_sasrec(s, progress=False).model  # reused: the teacher the LM stage trained
    assert len(seen) == 1 and torch.equal(seen[0], sasrec_item_vectors(sasrec))
    assert seen[0].shape == (load_lm(s).codes.n_items, 16)  # one row per item, SASRec's width
    assert s.run.read_record("lm")["config"]["lm"]["tiny"]["item_init"] == "teacher"
