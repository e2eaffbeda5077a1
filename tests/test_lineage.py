"""Content-keyed reuse and artefact integrity (agrec.run.lineage, agrec.run.rundir): a changed input or a damaged
artefact is never reused silently."""

import json
import os

import numpy as np
import pytest

from agrec.config import load_profile
from agrec.data.stage import prepare_data
from agrec.errors import AgrecError
from agrec import fingerprint as fingerprint_mod
from agrec.fingerprint import FingerprintCache, sha256_file
from agrec.io import orphaned_temps, writer_tag
from agrec.run.lineage import pipeline_status, stage_status
from agrec.run.rundir import RunDir, RunFolderError
from agrec.semantic_ids.stage import prepare_semantic_ids
from agrec.run.session import open_session

from conftest import write_json

PROFILE = """name: lin
seed: 7
data: {{dataset: Toy, format: lcrec, path: {data}, min_seq_len: 3}}
semantic_ids: {{use_given_codes: true}}
pipeline:
  stages: [data, semantic_ids]
  runs_dir: {root}/runs
  reports_dir: {root}/reports
"""


@pytest.fixture
def profile_path(tmp_path, lcrec_dir):
    p = tmp_path / "lin.yaml"
    p.write_text(PROFILE.format(data=lcrec_dir, root=tmp_path))
    return p


def _session(profile_path, **overrides):
    return open_session(profile_path, overrides=overrides)


def _states(s):
    return {st.stage: st.state for st in pipeline_status(s.profile, s.run)}


def test_fresh_run_is_missing_then_current_and_records_inputs_and_artefacts(profile_path, lcrec_dir):
    s = _session(profile_path)
    assert _states(s) == {"data": "missing", "semantic_ids": "missing"}
    prepare_semantic_ids(s, progress=False)
    assert _states(s) == {"data": "current", "semantic_ids": "current"}
    rec = s.run.read_record("data")
    assert rec["inputs"]["data:Toy.inter.json"] == "sha256:" + sha256_file(lcrec_dir / "Toy.inter.json")
    assert rec["inputs"]["data:Toy.index.json"].startswith("sha256:")
    assert set(rec["artefacts"]) == {"dataset.npz", "dataset.json", "split.npz"}
    npz = s.run.root / "data" / "dataset.npz"
    assert rec["artefacts"]["dataset.npz"] == {"size": npz.stat().st_size, "sha256": sha256_file(npz),
                                               "mtime_ns": npz.stat().st_mtime_ns}
    sem = s.run.read_record("semantic_ids")
    assert sem["inputs"]["upstream:data"] == rec["digest"]
    assert "codes.json" in sem["artefacts"]


def test_editing_a_data_file_makes_data_and_downstream_stale_and_recomputes_exactly_those(profile_path, lcrec_dir):
    s = _session(profile_path)
    prepare_semantic_ids(s, progress=False)
    ds0, _ = prepare_data(s)
    inter = json.loads((lcrec_dir / "Toy.inter.json").read_text())
    inter["9"] = [0, 1, 2, 4]  # a new user
    write_json(lcrec_dir / "Toy.inter.json", inter)

    st = {x.stage: x for x in pipeline_status(s.profile, s.run)}
    assert st["data"].state == "stale" and st["data"].reasons == ["data: Toy.inter.json changed"]
    assert st["semantic_ids"].state == "stale" and st["semantic_ids"].reasons == ["upstream data is stale"]

    logs = []
    stamp = s.run.record_path("semantic_ids").stat().st_mtime_ns
    assert not s.run.is_current("data", s.run.read_record("data")["config_hash"], s.profile, log=logs.append)
    assert logs == ["data: recomputing: data: Toy.inter.json changed"]
    ds1, _ = prepare_data(s)
    assert ds1.n_users == ds0.n_users + 1
    # data is current again; semantic_ids now sees a changed upstream and recomputes when asked
    st = {x.stage: x for x in pipeline_status(s.profile, s.run)}
    assert st["data"].current and st["semantic_ids"].reasons == ["upstream data changed"]
    prepare_semantic_ids(s, progress=False)
    assert s.run.record_path("semantic_ids").stat().st_mtime_ns != stamp
    assert _states(s) == {"data": "current", "semantic_ids": "current"}


def test_an_optional_file_appearing_or_disappearing_is_a_change(profile_path, lcrec_dir):
    s = _session(profile_path)
    prepare_data(s)
    (lcrec_dir / "Toy.item.json").unlink()
    assert stage_status(s.profile, s.run, "data").reasons == ["data: Toy.item.json was removed"]


def test_same_content_rewritten_is_still_current(profile_path, lcrec_dir):
    s = _session(profile_path)
    prepare_data(s)
    p = lcrec_dir / "Toy.inter.json"
    p.write_bytes(p.read_bytes())  # new mtime, same content: rehashed, found equal
    os.utime(p, ns=(1, 1))
    assert stage_status(s.profile, s.run, "data").current


def test_config_change_names_the_section(profile_path):
    s = _session(profile_path)
    prepare_semantic_ids(s, progress=False)
    s2 = _session(profile_path, seed=8)
    st = {x.stage: x for x in pipeline_status(s2.profile, s2.run)}
    assert st["data"].current  # the data stage does not depend on the seed
    assert st["semantic_ids"].reasons == ["config changed: seed"]


@pytest.mark.parametrize("name", ["dataset.npz", "split.npz", "dataset.json"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_damaged_data_artefact_is_never_reused(profile_path, name, damage):
    s = _session(profile_path)
    ds0, split0 = prepare_data(s)
    p = s.run.root / "data" / name
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[:10])
    elif damage == "garbage":
        p.write_bytes(os.urandom(p.stat().st_size))  # same size, new content and mtime
    else:
        p.unlink()
    st = stage_status(s.profile, s.run, "data")
    assert st.state == "stale" and len(st.reasons) == 1 and str(p) in st.reasons[0]
    assert "allow_pickle" not in st.reasons[0]
    ds1, split1 = prepare_data(s)  # recomputed, not loaded
    assert ds1.n_users == ds0.n_users and np.array_equal(split1.test, split0.test)
    assert stage_status(s.profile, s.run, "data").current


def test_same_size_garbage_with_the_old_mtime_is_caught_without_verify(profile_path):
    s = _session(profile_path)
    prepare_data(s)
    p = s.run.root / "data" / "split.npz"
    st0 = p.stat()
    p.write_bytes(os.urandom(st0.st_size))
    os.utime(p, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st0.st_size, st0.st_mtime_ns)
    # the inode change time moved (a user cannot set it back): the quick check rehashes the file
    want = [f"artefact {p} has changed content (sha256 differs from the record)"]
    assert stage_status(s.profile, s.run, "data").reasons == want
    assert stage_status(s.profile, s.run, "data", verify=True).reasons == want


def test_an_input_edited_in_place_with_size_and_mtime_restored_is_caught_without_verify(tmp_path, lcrec_dir):
    prof = tmp_path / "toy.yaml"
    prof.write_text(f"name: toy\nseed: 1\ndata: {{dataset: Toy, format: lcrec, path: {lcrec_dir}}}\n"
                    f"pipeline: {{runs_dir: {tmp_path / 'runs'}, reports_dir: {tmp_path / 'reports'}}}\n")
    s = open_session(prof)
    prepare_data(s)
    assert stage_status(s.profile, s.run, "data").current
    f = lcrec_dir / "Toy.item.json"
    st0 = f.stat()
    text = f.read_text()
    f.write_text(text.replace("Item 1", "Item 7"))     # same size
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    assert stage_status(s.profile, s.run, "data").reasons == ["data: Toy.item.json changed"]
    # an untouched file copied over another (new inode, same bytes) is rehashed and found unchanged
    f.write_text(text)
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    assert stage_status(s.profile, s.run, "data").current


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"stage": "other", "config_hash": "x"}',
                                     os.urandom(64)])
def test_a_garbage_record_means_no_record(profile_path, content):
    s = _session(profile_path)
    prepare_semantic_ids(s, progress=False)
    s.run.record_path("data").write_bytes(content)
    assert s.run.read_record("data") is None
    st = {x.stage: x for x in pipeline_status(s.profile, s.run)}
    assert st["data"].state == "missing" and "unreadable" in st["data"].reasons[0]
    assert st["semantic_ids"].reasons == ["upstream data is missing"]
    prepare_data(s)  # recomputes, no JSONDecodeError
    assert stage_status(s.profile, s.run, "data").current


def test_damaged_codes_json_recomputes_the_semantic_id_stage(profile_path):
    s = _session(profile_path)
    codes0 = prepare_semantic_ids(s, progress=False).codes
    p = s.run.root / "semantic_ids" / "codes.json"
    p.write_text("garbage")
    st = stage_status(s.profile, s.run, "semantic_ids")
    assert st.state == "stale" and str(p) in st.reasons[0]
    codes1 = prepare_semantic_ids(s, progress=False).codes
    assert np.array_equal(codes0.codes, codes1.codes)


def test_an_agrec_version_change_is_a_reason(profile_path, monkeypatch):
    import agrec

    s = _session(profile_path)
    prepare_data(s)
    monkeypatch.setattr(agrec, "__version__", "99.0")
    assert stage_status(s.profile, s.run, "data").reasons == ["code: agrec 0.1.0 -> 99.0"]


def test_fingerprint_cache_uses_the_stat_fields_a_user_cannot_restore_then_rehashes(tmp_path, monkeypatch):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    cache = FingerprintCache(tmp_path / "fp.json")
    h = cache.file(f)
    assert h == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    cache.save()
    hashed = []
    real = fingerprint_mod.sha256_file
    monkeypatch.setattr(fingerprint_mod, "sha256_file", lambda p: hashed.append(p) or real(p))
    again = FingerprintCache(tmp_path / "fp.json")
    assert again.file(f) == h and hashed == []   # unchanged stat fields: the remembered hash, no hashing
    st = f.stat()
    f.write_bytes(b"xyz")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))   # size and mtime restored; ctime moved
    xyz = "sha256:3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282"
    assert again.file(f) == xyz and len(hashed) == 1
    assert again.file(f, verify=True) == xyz and len(hashed) == 2
    assert FingerprintCache(tmp_path / "missing.json").file(tmp_path / "nope") == "absent"
    (tmp_path / "fp.json").write_text("garbage")
    assert FingerprintCache(tmp_path / "fp.json").file(f) == again.file(f, verify=True)


def test_read_only_run_folder_is_a_named_error(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.stage_dir("data")
    run.record_path("data").write_text("{}")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(run.record_path("data")), "unlink", refuse)
    with pytest.raises(RunFolderError, match=r"run/data is not writable \(permission denied\)"):
        run.invalidate("data")
    assert isinstance(RunFolderError("x"), AgrecError)


def test_invalidating_a_stage_removes_what_killed_writers_left_in_its_folders_and_the_run_folder(
    tmp_path, killed_writer
):
    run = RunDir(tmp_path / "run")
    for stage in ("lm", "decode"):
        (run.stage_dir(stage) / "model.bin").write_text("an artefact, resumable")
    lm_pid = killed_writer(run.root / "lm")  # a checkpoint folder and a table, mid-write
    decode_pid = killed_writer(run.root / "decode")
    trash = run.root / f".gnn.pid{lm_pid}@{writer_tag().split('@')[1]}.discarded.tmp"  # a discard killed mid-delete
    (trash / "sub").mkdir(parents=True)
    logs: list[str] = []
    removed = run.invalidate("lm", log=logs.append)
    assert [p.relative_to(run.root).parts[:-1] for p in removed] == [(), ("lm",), ("lm", "ckpt")]
    assert removed[0] == trash and all(f"left by process {lm_pid}, which is gone" in m for m in logs)
    assert not run.record_path("lm").exists() and (run.root / "lm" / "model.bin").read_text() == "an artefact, resumable"
    assert (run.root / "lm" / "ckpt").is_dir() and not any((run.root / "lm" / "ckpt").iterdir())
    # another stage's leftovers wait for that stage to recompute
    assert len(orphaned_temps(run.root / "decode", recursive=True)) == 2 and decode_pid != lm_pid


def test_status_of_a_profile_without_runs(profile_path):
    prof = load_profile(profile_path)
    lines = [st.line() for st in pipeline_status(prof, RunDir(prof.run_dir))]
    assert lines == ["data          missing (no record)",
                     "semantic_ids  missing (no record)"]


def test_recomputing_data_from_the_same_inputs_keeps_downstream_current(profile_path):
    s = _session(profile_path)
    prepare_semantic_ids(s, progress=False)
    digest = s.run.digest("data")
    prepare_data(s, force=True)  # same files, same config: byte-identical artefacts, same digest
    assert s.run.digest("data") == digest
    assert stage_status(s.profile, s.run, "semantic_ids").current


def test_a_local_checkpoint_given_by_path_is_an_input_of_the_lm_stage(profile_path, tmp_path):
    from agrec.run.lineage import _describe_input_change, stage_inputs

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"a": 1}')
    (ckpt / "model.safetensors").write_bytes(b"\0" * 64)
    prof = load_profile(profile_path, {"lm.backbone": "path:ckpt"})
    run = RunDir(prof.run_dir)
    before = stage_inputs(prof, run, "lm")["checkpoint:path:ckpt"]
    assert before.startswith("tree:")
    (ckpt / "model.safetensors").write_bytes(b"\1" * 64)
    after = stage_inputs(prof, run, "lm")["checkpoint:path:ckpt"]
    assert after != before
    assert _describe_input_change("checkpoint:path:ckpt", before, after) == "checkpoint path:ckpt changed"
    (ckpt / "model.safetensors").unlink()
    (ckpt / "config.json").unlink()
    ckpt.rmdir()
    assert stage_inputs(prof, run, "lm")["checkpoint:path:ckpt"] == "absent"


def test_the_semantic_id_stage_names_the_package_its_encoder_runs(profile_path):
    import importlib.metadata

    from agrec.run.lineage import stage_inputs

    text = stage_inputs(load_profile(profile_path), RunDir(load_profile(profile_path).run_dir), "semantic_ids")
    assert "package:sentence-transformers" in text and "package:scikit-learn" not in text
    prof = load_profile(profile_path, {"semantic_ids.encoder": "collaborative"})
    cf = stage_inputs(prof, RunDir(prof.run_dir), "semantic_ids")
    assert cf["package:scikit-learn"] == importlib.metadata.version("scikit-learn")
    # neither MiniLM nor the backbone LM of encoder "lm" is read by the collaborative embedding
    assert not any(k.startswith(("package:sentence", "package:gt-all", "package:llm-", "backbone:")) for k in cf)


def test_an_edited_implementation_is_noted_by_file_but_not_a_reason(profile_path, monkeypatch, tmp_path):
    import shutil

    import agrec.run.lineage as lineage

    # the stage's sources from a copy of the package, so that the test can edit, add and remove files
    pkg = tmp_path / "agrec"
    shutil.copytree(lineage._package_root() / "data", pkg / "data", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(lineage, "_package_root", lambda: pkg)
    s = _session(profile_path)
    prepare_data(s)
    rec = s.run.read_record("data")
    assert rec["sources"] == ["data"] and rec["source_digest"] == lineage.source_digest(("data",))
    assert sorted(rec["source_files"]) == sorted(f"data/{f.name}" for f in (pkg / "data").glob("*.py"))
    assert rec["source_files"]["data/split.py"] == sha256_file(pkg / "data" / "split.py")[:16]
    assert stage_status(s.profile, s.run, "data").notes == []
    (pkg / "data" / "split.py").write_text((pkg / "data" / "split.py").read_text() + "\n# edited\n")
    (pkg / "data" / "stats.py").unlink()
    (pkg / "data" / "extra.py").write_text("X = 1\n")
    (pkg / "data" / "registry.yaml").write_text("not python: not a source\n")
    st = stage_status(s.profile, s.run, "data")
    assert st.current and st.notes == ["the agrec code of this stage changed since it ran (data/extra.py (new), "
                                       "data/split.py, data/stats.py (removed)); --force recomputes it"]


def test_the_lm_stage_covers_the_decoding_that_picks_its_epoch_and_the_teacher_it_distils_from(profile_path):
    from agrec.run.lineage import stage_sources

    select = ("decode/beam.py", "decode/fsm.py", "decode/trie.py", "decode/config.py", "decode/evaluate.py", "metrics.py")
    assert stage_sources(load_profile(profile_path), "lm") == ("lm",)  # lm.select "last": no decoding, no teacher
    assert stage_sources(load_profile(profile_path, {"lm.select": "ndcg"}), "lm") == ("lm", *select)
    distil = load_profile(profile_path, {"lm.distill_teacher": "sasrec"})
    assert stage_sources(distil, "lm") == ("lm", "baselines", "scorers.py")
    assert stage_sources(distil, "gnn") == ("gnn", "metrics.py")  # a profile's teacher is the lm stage's only


def test_a_record_without_its_sources_is_compared_over_what_it_covered_then(profile_path, monkeypatch):
    import agrec.run.lineage as lineage

    s = _session(profile_path)
    prepare_data(s)
    path = s.run.record_path("data")
    rec = json.loads(path.read_text())
    del rec["sources"], rec["source_files"]  # a record written before records listed their sources
    path.write_text(json.dumps(rec))
    assert stage_status(s.profile, s.run, "data").notes == []
    # its digest is checked over the legacy set, not over today's STAGE_SOURCES (("data",)): a wider legacy set differs
    monkeypatch.setitem(lineage.LEGACY_SOURCES, "data", ("data", "metrics.py"))
    st = stage_status(s.profile, s.run, "data")
    assert st.current and st.notes == ["the agrec code of this stage changed since it ran (in data, metrics.py); "
                                       "--force recomputes it"]


def test_a_stage_computed_on_another_processor_is_current_with_a_note(profile_path, monkeypatch):
    import agrec.run.provenance as provenance

    s = _session(profile_path)
    prepare_data(s)
    rec = s.run.read_record("data")
    assert rec["versions"]["cpu"] and rec["versions"]["cpu_count"] >= 1  # the machine is in every record
    monkeypatch.setattr(provenance, "machine_info", lambda: {"cpu": "Other CPU (family 6, model 143)",
                                                         "cpu_count": 64, "torch_cpu_capability": None,
                                                         "torch_threads": None, "cuda_device": None})
    st = stage_status(s.profile, s.run, "data")
    assert st.current and st.notes == [f"computed on another machine (cpu {rec['versions']['cpu']!r} -> "
                                       f"'Other CPU (family 6, model 143)'): a rerun here may give slightly "
                                       f"different numbers"]


def test_a_record_of_a_newer_format_is_refused_not_overwritten(profile_path):
    s = _session(profile_path)
    prepare_data(s)
    path = s.run.record_path("data")
    rec = json.loads(path.read_text())
    assert rec["format"] == 2
    path.write_text(json.dumps({**rec, "format": 3}))
    with pytest.raises(AgrecError, match=r"stage record format 3 was written by a newer agrec \(this one reads up to 2\); upgrade agrec, or use another run folder"):
        prepare_data(s)
    assert json.loads(path.read_text())["format"] == 3            # left as it was
