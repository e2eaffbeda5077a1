"""``agrec data check`` (agrec.data.check) and the registry of known datasets (agrec.data.registry), on the synthetic
index-only folder of tests/data/index_only.py and registries written for it."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from agrec.cli import main
from agrec.data.check import check_lcrec, registry_summary, summary_note
from agrec.data.registry import FileRecord, file_digests, load_registry
from agrec.errors import DataError
from tests.data.index_only import write_index_only

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

INTER, INDEX = "Synth.inter.json", "Synth.index.json"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def registry_for(folder, path, **extra):
    """A registry recording the fixture in ``folder`` as it is (plus ``extra`` YAML lines of the entry)."""
    lines = ["datasets:", "  Synth:", "    source: tests, index_only.py",
             "    files:",
             f"      {INTER}: {{sha256: {sha(folder / INTER)}}}",
             f"      {INDEX}: {{sha256: {sha(folder / INDEX)}}}",
             "    statistics: {users: 120, items: 48, interactions: 930, avg_length: 7.75, min_length: 5, "
             "max_length: 10, repeats: 0, test_in_history: 0, valid_in_history: 0}",
             "    codes: {entries: 48, levels: 4, codebook_sizes: [4, 3, 4, 1], colliding_items: 6, "
             "collision_groups: 3, largest_group: 2}"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def synth(tmp_path):
    folder = write_index_only(tmp_path / "Synth")
    return folder, load_registry(registry_for(folder, tmp_path / "registry.yaml"))


def expected(folder, files, statistics, coverage, codes, result):
    return "\n".join([f"Synth: {folder} (LC-Rec layout)",
                      "registry: tests, index_only.py (statistics measured on those files; the paper's Table 1 is "
                      "not recorded)", "files", *files, "statistics", *statistics, "coverage", *coverage, "codes",
                      *codes, result]) + "\n"


STATS_OK = ["  ok        users                     120",
            "  ok        items                     48",
            "  ok        interactions              930",
            "  ok        avg_length                7.7500",
            "  ok        min_length                5",
            "  ok        max_length                10",
            "  ok        repeats                   0",
            "  ok        test_in_history           0",
            "  ok        valid_in_history          0",
            "  note      short users               0 user(s) shorter than data.min_seq_len = 3"]
COVERAGE_OK = ["  ok        codes                     48 of 48 interacted items",
               "  absent    text                      no item text: the semantic_ids stage uses the given codes, the "
               "reports show item ids"]
CODES_OK = ["  ok        entries                   48",
            "  ok        levels                    4",
            "  ok        codebook_sizes            [4, 3, 4, 1]",
            "  ok        colliding_items           6",
            "  ok        collision_groups          3",
            "  ok        largest_group             2",
            "  note      collisions                6 items share their code tuple with another; the semantic_ids stage "
            "separates them (semantic_ids.dedup = extra_level)"]


def files_ok(folder):
    return [f"  ok        {INTER}          sha256 {sha(folder / INTER)[:12]}… as recorded",
            "  absent    Synth.item.json           optional: no item text; codes come from Synth.index.json",
            f"  ok        {INDEX}          sha256 {sha(folder / INDEX)[:12]}… as recorded"]


def test_recorded_copy_passes(synth):
    folder, reg = synth
    report = check_lcrec(folder, "Synth", reg)
    assert report.ok
    assert report.format() == expected(folder, files_ok(folder), STATS_OK, COVERAGE_OK, CODES_OK,
                                       "result: ok, everything recorded matches")


def test_an_edited_inter_file_is_reported_with_its_file_and_statistics(synth):
    folder, reg = synth
    want = sha(folder / INTER)
    inter = json.loads((folder / INTER).read_text())
    inter["0"] = inter["0"] + [47]             # one more interaction: user 0 (10 items, the longest) gets 11
    (folder / INTER).write_text(json.dumps(inter))
    report = check_lcrec(folder, "Synth", reg)
    assert not report.ok
    files = files_ok(folder)
    files[0] = f"  DIFFERS   {INTER}          sha256 {sha(folder / INTER)}, recorded {want}"
    stats = list(STATS_OK)
    stats[2] = "  DIFFERS   interactions              931, recorded 930"
    stats[3] = "  DIFFERS   avg_length                7.7583, recorded 7.7500"
    stats[5] = "  DIFFERS   max_length                11, recorded 10"
    assert report.format() == expected(
        folder, files, stats, COVERAGE_OK, CODES_OK,
        f"result: FAILED, 4 problem(s): {INTER} differs; interactions differs; avg_length differs; max_length differs")


def test_codes_missing_for_interacted_items_and_changed_collisions(synth):
    folder, reg = synth
    index = json.loads((folder / INDEX).read_text())
    for it in ("3", "30", "31", "32", "33", "34"):
        del index[it]
    index["0"] = index["1"]                     # a new collision: items 0 and 1
    (folder / INDEX).write_text(json.dumps(index))
    report = check_lcrec(folder, "Synth", reg)
    text = report.format()
    assert "  MISSING   codes                     6 of 48 interacted items have no codes in Synth.index.json: " \
           "'3', '30', '31', '32', '33', …\n" in text
    assert "  DIFFERS   entries                   42, recorded 48\n" in text
    assert "  DIFFERS   colliding_items           8, recorded 6\n" in text
    assert "  DIFFERS   collision_groups          4, recorded 3\n" in text
    assert f"  DIFFERS   {INDEX}          sha256 {sha(folder / INDEX)}, recorded " in text
    assert text.endswith("result: FAILED, 5 problem(s): Synth.index.json differs; codes missing; entries differs; "
                         "colliding_items differs; collision_groups differs\n")


def test_malformed_files_are_errors_naming_file_and_record(synth):
    folder, reg = synth
    index = json.loads((folder / INDEX).read_text())
    index["5"] = ["<a_0>", "<b_1>", "<c_1>"]    # three levels where the others have four
    (folder / INDEX).write_text(json.dumps(index))
    (folder / INTER).write_text('{"0": [1, 2, 3], "0": [4, 5, 6]}')
    report = check_lcrec(folder, "Synth", reg)
    lines = [(ln.status, ln.name, ln.detail) for ln in report.lines if ln.failing]
    assert [ln[:2] for ln in lines[:2]] == [("DIFFERS", INTER), ("DIFFERS", INDEX)]
    assert lines[2] == ("ERROR", INTER, f"{folder / INTER}: key '0' appears twice in one object (JSON keeps only the "
                                        f"last; merge or rename them)")
    assert lines[3] == ("ERROR", INDEX, f"{folder / INDEX}: item '5' has 3 codes, item '0' has 4; every item needs "
                                        f"the same number of levels")
    assert not any(ln.section in ("statistics", "coverage") for ln in report.lines)
    (folder / INTER).write_text('{"0": [1, 2, 3], "1": []}')
    assert check_lcrec(folder, "Synth", reg).lines[3].detail == f"{folder / INTER}: user '1' has an empty sequence"


def test_missing_required_files(tmp_path):
    reg = {}
    (tmp_path / "X").mkdir()
    report = check_lcrec(tmp_path / "X", "X", reg)
    assert [(ln.status, ln.name, ln.detail) for ln in report.lines] == [
        ("MISSING", "X.inter.json", "required (the interactions)"),
        ("MISSING", "X.item.json", "required: neither X.item.json (item text) nor X.index.json (codes) is present")]
    assert report.format().endswith("result: FAILED, 2 problem(s): X.inter.json missing; X.item.json missing\n")


def test_missing_folder(tmp_path):
    report = check_lcrec(tmp_path / "nowhere", "Instruments")      # the committed registry
    assert report.format() == (
        f"Instruments: {tmp_path / 'nowhere'} (LC-Rec layout)\n"
        "registry: WangXFng/AGRec @ 63af6b2, data/Instruments/ (statistics measured on those files; the paper's "
        "Table 1 is not recorded)\n"
        "files\n"
        "  MISSING   nowhere/                  folder not found (data.path)\n"
        "result: FAILED, 1 problem(s): nowhere/ missing\n")


def test_text_only_folder_needs_text_for_every_item(tmp_path):
    folder = tmp_path / "T"
    folder.mkdir()
    (folder / "T.inter.json").write_text(json.dumps({"u": [1, 2, 3], "v": [2, 3, 4, 2]}))
    (folder / "T.item.json").write_text(json.dumps({"1": {"title": "One"}, "2": {"title": " "},
                                                    "3": {"categories": ["x"]}, "9": {"title": "Nine"}}))
    report = check_lcrec(folder, "T", {}, min_seq_len=4)
    got = [(ln.section, ln.status, ln.name, ln.detail) for ln in report.lines]
    assert ("files", "absent", "T.index.json", "optional: no given codes; the semantic_ids stage makes them from the "
                                               "item text") in got
    assert ("statistics", "", "repeats", "1") in got
    assert ("statistics", "note", "short users", "1 user(s) shorter than data.min_seq_len = 4 (the data stage "
                                                 "filters and counts them)") in got
    assert ("coverage", "MISSING", "text", "2 of 4 interacted items have no text: '2', '4' (no codes given: every "
                                           "item needs text)") in got
    assert ("text", "", "entries", "4") in got and ("text", "", "with_text", "3") in got


def test_a_profile_that_makes_its_own_codes_needs_the_item_text_of_an_unrecorded_folder(synth):
    folder, _ = synth
    # not in the registry, codes only: the given codes make the semantic IDs, the text is optional ...
    report = check_lcrec(folder, "Synth", {})
    got = [(ln.section, ln.status, ln.name, ln.detail) for ln in report.lines]
    assert ("files", "absent", "Synth.item.json", f"optional: no item text; codes come from {INDEX}") in got
    assert ("coverage", "absent", "text", "no item text: the semantic_ids stage uses the given codes, the reports "
                                          "show item ids") in got
    # ... unless the profile trains its own codes, which it does from the item text alone
    report = check_lcrec(folder, "Synth", {}, use_given_codes=False)
    got = [(ln.section, ln.status, ln.name, ln.detail) for ln in report.lines]
    assert not report.ok
    assert ("files", "MISSING", "Synth.item.json", "required: the profile makes its own codes from the item text "
                                                   f"(semantic_ids.use_given_codes: false), {INDEX} is not used") in got
    assert [g for g in got if g[0] == "coverage" and g[2] == "text"] == []
    # text for some items only: given codes cover the rest; own codes need text for every item
    (folder / "Synth.item.json").write_text(json.dumps({str(i): {"title": f"t{i}"} for i in range(1, 48)}))
    note = [(ln.status, ln.detail) for ln in check_lcrec(folder, "Synth", {}).lines
            if ln.section == "coverage" and ln.name == "text"]
    assert note == [("note", "1 of 48 interacted items have no text: '0' (their codes are given)")]
    report = check_lcrec(folder, "Synth", {}, use_given_codes=False)
    assert not report.ok
    assert [(ln.status, ln.detail) for ln in report.lines if ln.section == "coverage" and ln.name == "text"] == [
        ("MISSING", "1 of 48 interacted items have no text: '0' (semantic_ids.use_given_codes: false makes the "
                    "codes from text: every item needs it)")]


def test_git_blob_identifies_a_file_whose_sha256_is_not_recorded(synth, tmp_path):
    folder, _ = synth
    data = (folder / INTER).read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert file_digests(folder / INTER) == (sha(folder / INTER), blob)
    reg = {"Synth": load_registry(registry_for(folder, tmp_path / "r.yaml"))["Synth"]}
    reg["Synth"].files[INTER] = FileRecord(git_blob=blob)
    reg["Synth"].files[INDEX] = FileRecord()
    lines = {ln.name: (ln.status, ln.detail) for ln in check_lcrec(folder, "Synth", reg).lines if ln.section == "files"}
    assert lines[INTER] == ("ok", f"git blob {blob[:12]}… as recorded (sha256 {sha(folder / INTER)[:12]}…)")
    assert lines[INDEX] == ("unknown", f"sha256 {sha(folder / INDEX)}: no recorded checksum")
    reg["Synth"].files[INTER] = FileRecord(git_blob="0" * 40)
    lines = {ln.name: (ln.status, ln.detail) for ln in check_lcrec(folder, "Synth", reg).lines if ln.section == "files"}
    assert lines[INTER] == ("DIFFERS", f"git blob {blob}, recorded {'0' * 40}")


def test_paper_values_are_compared_where_recorded(synth, tmp_path):
    folder, _ = synth
    reg = load_registry(registry_for(folder, tmp_path / "r.yaml", paper="{users: 120, items: 49}"))
    text = check_lcrec(folder, "Synth", reg).format()
    assert "(statistics measured on those files; the paper's Table 1 is recorded too)" in text
    assert "  ok        users (paper Table 1)     120\n" in text
    assert "  DIFFERS   items (paper Table 1)     48, paper 49\n" in text


def test_unknown_dataset_prints_its_values_and_the_entry_that_records_it(synth):
    folder, _ = synth
    shutil.copytree(folder, folder.parent / "Copy")
    report = check_lcrec(folder, "Synth", {})
    assert report.ok
    text = report.format()
    assert "registry: Synth is not a known dataset: nothing to compare with; the values below are this copy's\n" in text
    assert "            users                     120\n" in text
    assert f"  unknown   {INTER}          sha256 {sha(folder / INTER)}: no recorded checksum\n" in text
    assert "result: ok (usable; not in the registry, so nothing was compared)\n" in text
    # the printed entry, once pasted into a registry, makes the same copy pass
    entry = text.split("under datasets:\n", 1)[1]
    reg_file = folder.parent / "new.yaml"
    reg_file.write_text("datasets:\n" + entry.replace("<repository @ commit, folder>", "here"))
    again = check_lcrec(folder.parent / "Copy", "Synth", load_registry(reg_file))
    assert again.ok and not any(ln.status == "unknown" for ln in again.lines)


def test_committed_registry_records_the_authors_files():
    reg = load_registry()
    assert sorted(reg) == ["Arts", "Beauty", "Games", "Instruments", "Yelp"]
    ins = reg["Instruments"]
    assert ins.source == "WangXFng/AGRec @ 63af6b2, data/Instruments/"
    assert ins.statistics == {"users": 24772, "items": 9922, "interactions": 206153, "avg_length": 8.322,
                              "min_length": 5, "max_length": 218, "repeats": 0, "test_in_history": 0,
                              "valid_in_history": 0}
    assert ins.files["Instruments.inter.json"].sha256 == \
        "0a11d47791d90483005da93c36d826679e20e4592d1d2b86518d5f56f218e743"
    # known from a Git LFS pointer that replaced exactly the authors' blob (wzf2000/GAMER @ aaba49a)
    assert ins.files["Instruments.item.json"] == FileRecord(
        sha256="1d9938e576a8d964e6b977a2b63aa56402840a788eaa6685f26f0d910a7133f2",
        git_blob="e1b565483dc55f63dc260aab13d0b3e1d73420fd", bytes=7526890)
    assert reg["Games"].files["Games.item.json"] == FileRecord(git_blob="5ca3711d3ab8342e05b469e89654cf860457d6d1")
    assert reg["Yelp"].files["Yelp.inter.json"].sha256 == \
        "22069fef8afd1d53fe9e0aaa385a6c93f7b43e43574fb10f5f5155fa2c869a97"
    assert reg["Yelp"].statistics["test_in_history"] == 2027 and reg["Yelp"].statistics["valid_in_history"] == 1640
    # reassembled from its text and checked against the authors' git blob id (docs/data.md)
    assert reg["Arts"].statistics == {"users": 45141, "items": 20956, "interactions": 390832, "avg_length": 8.658,
                                      "min_length": 5, "max_length": 184, "repeats": 0, "test_in_history": 0,
                                      "valid_in_history": 0}
    assert reg["Arts"].files["Arts.inter.json"] == FileRecord(
        sha256="34cfe08a02f7a36eb601ef47f5c3bcd167bcf5060e659df50a1bd12e38c574d3",
        git_blob="14458a7bb2c2f2be979963cccd4f750d20922ad1", bytes=6450349)
    assert reg["Arts"].files["Arts.item.json"] == FileRecord(git_blob="1c214be3483fdd119f145a1f2f0d9e249d918f51")
    assert reg["Yelp"].text == {"entries": 20033, "with_text": 20033}
    assert all(not r.paper for r in reg.values())          # the paper's Table 1 was not read


@pytest.mark.parametrize("body, message", [
    ("datasets:\n  X: {files: {}}\n", "datasets.X.source: expected where the files come from"),
    ("datasets:\n  X: {source: s, files: {a.json: {sha256: abc}}}\n", "datasets.X.files.a.json.sha256: expected 64"),
    ("datasets:\n  X: {source: s, statistics: {userz: 1}}\n", "datasets.X.statistics: unknown key 'userz'"),
    ("datasets:\n  X: {source: s, colour: red}\n", "datasets.X: unknown key(s) colour"),
    ("[]\n", "expected a mapping with a 'datasets' mapping"),
])
def test_malformed_registry_names_the_key(tmp_path, body, message):
    p = tmp_path / "r.yaml"
    p.write_text(body)
    with pytest.raises(DataError, match="^" + str(p).replace(".", r"\.") + ".*" + message.replace(".", r"\.")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_registry(p)


def test_registry_summary_from_stage_fingerprints(synth):
    folder, reg = synth
    inputs = {"code:agrec": "x", f"data:{INTER}": f"sha256:{sha(folder / INTER)}", "data:Synth.item.json": "absent",
              f"data:{INDEX}": "sha256:" + "0" * 64}
    stats = {"users": 120, "items": 48, "interactions": 930, "min_length": 5, "max_length": 10, "filtered_users": 0}
    s = registry_summary("Synth", inputs, stats, reg)
    assert s == {"source": "tests, index_only.py", "matches": False, "statistics": "matches",
                 "files": {INTER: "matches", "Synth.item.json": "absent", INDEX: "differs"}}
    assert summary_note(s) == ("registry: Synth.index.json differ(s) from tests, index_only.py; `agrec data check` "
                               "says how")
    inputs[f"data:{INDEX}"] = f"sha256:{sha(folder / INDEX)}"
    s = registry_summary("Synth", inputs, stats | {"users": 119}, reg)
    assert s["statistics"] == "differs: users 119 (recorded 120)" and not s["matches"]
    s = registry_summary("Synth", inputs, stats | {"users": 119, "filtered_users": 1}, reg)
    assert s["matches"] and s["statistics"] == "not compared: 1 user(s) filtered by data.min_seq_len"
    assert summary_note(s) == (f"registry: {INTER}, {INDEX} match tests, index_only.py (sha256); statistics: not "
                               f"compared: 1 user(s) filtered by data.min_seq_len")
    assert registry_summary("Other", inputs, stats, reg) is None


PROFILE = """name: check
data: {{dataset: Synth, format: lcrec, path: {path}, min_seq_len: {msl}}}
pipeline: {{runs_dir: {root}/runs, reports_dir: {root}/reports}}
"""


def test_cli_data_check(synth, tmp_path, capsys):
    folder, _ = synth
    reg = registry_for(folder, tmp_path / "registry.yaml")
    prof = tmp_path / "p.yaml"
    prof.write_text(PROFILE.format(path=folder, msl=3, root=tmp_path))
    assert main(["data", "check", "--config", str(prof), "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert out == expected(folder, files_ok(folder), STATS_OK, COVERAGE_OK, CODES_OK,
                           "result: ok, everything recorded matches")
    # --set reaches the profile; --path/--dataset check a folder without a profile
    assert main(["data", "check", "--config", str(prof), "--registry", str(reg), "--set", "data.min_seq_len=6"]) == 0
    assert "  note      short users               16 user(s) shorter than data.min_seq_len = 6 (the data stage " \
           "filters and counts them)\n" in capsys.readouterr().out
    (folder / INTER).write_text((folder / INTER).read_text().replace("[", "[47, ", 1))
    assert main(["data", "check", "--path", str(folder), "--dataset", "Synth", "--registry", str(reg)]) == 1
    assert "result: FAILED" in capsys.readouterr().out
    assert main(["data", "check", "--path", str(folder)]) == 2
    assert "give --config PROFILE, or --path FOLDER with --dataset NAME" in capsys.readouterr().err
    bad = tmp_path / "ml.yaml"
    bad.write_text("name: x\n")
    assert main(["data", "check", "--config", str(bad)]) == 2
    assert "data.format is 'movielens'; the check covers the LC-Rec layout" in capsys.readouterr().err


def test_data_stage_records_the_registry_comparison(synth, tmp_path, monkeypatch):
    import agrec.data.check as check
    from agrec.data.stage import prepare_data
    from agrec.run.session import open_session

    folder, reg = synth
    monkeypatch.setattr(check, "load_registry", lambda path=None: reg)
    prof = tmp_path / "p.yaml"
    prof.write_text(PROFILE.format(path=folder, msl=3, root=tmp_path))
    s = open_session(prof)
    ds, _ = prepare_data(s)
    note = f"registry: {INTER}, {INDEX} match tests, index_only.py (sha256); statistics: matches"
    assert ds.notes == [note]
    rec = s.run.read_record("data")
    assert rec["registry"] == {"source": "tests, index_only.py", "matches": True, "statistics": "matches",
                               "files": {INTER: "matches", "Synth.item.json": "absent", INDEX: "matches"}}
    assert prepare_data(s)[0].notes == [note]           # reused with its note
    # not in the registry: no record key, no note
    monkeypatch.setattr(check, "load_registry", lambda path=None: {})
    ds, _ = prepare_data(s, force=True)
    assert ds.notes == [] and "registry" not in s.run.read_record("data")


def test_a_recorded_item_file_absent_beside_the_codes_is_noted_and_without_them_fails_the_check(synth, tmp_path, capsys):
    folder, _ = synth
    (folder / "Synth.item.json").write_text(json.dumps({str(i): {"title": f"t{i}"} for i in range(48)}))
    reg = registry_for(folder, tmp_path / "with_item.yaml")
    text = reg.read_text().replace(
        f"      {INDEX}:", f"      Synth.item.json: {{sha256: {sha(folder / 'Synth.item.json')}}}\n      {INDEX}:")
    reg.write_text(text)
    assert check_lcrec(folder, "Synth", load_registry(reg)).ok
    # the authors' folders have item text that many copies lack: with the codes present the rows are the same
    (folder / "Synth.item.json").unlink()
    report = check_lcrec(folder, "Synth", load_registry(reg))
    assert report.ok
    assert ("absent", "Synth.item.json",
            f"in the registry's copy of Synth, not in this one: the semantic IDs come from {INDEX} (the reports show "
            "item ids; a profile that makes its own codes, semantic_ids.use_given_codes: false, needs it)") in [
        (ln.status, ln.name, ln.detail) for ln in report.lines]
    assert main(["data", "check", "--path", str(folder), "--dataset", "Synth", "--registry", str(reg)]) == 0
    capsys.readouterr()
    # a profile that makes its own codes from the text needs it
    report = check_lcrec(folder, "Synth", load_registry(reg), use_given_codes=False)
    assert not report.ok and ("MISSING", "Synth.item.json") in [(ln.status, ln.name) for ln in report.lines]
    # without the codes either, the recorded files are missing: the copy is incomplete
    (folder / INDEX).unlink()
    report = check_lcrec(folder, "Synth", load_registry(reg))
    assert not report.ok
    assert ("MISSING", "Synth.item.json", f"recorded in the registry for Synth, not in {folder}") in [
        (ln.status, ln.name, ln.detail) for ln in report.lines]
    assert main(["data", "check", "--path", str(folder), "--dataset", "Synth", "--registry", str(reg)]) == 1
    assert "result: FAILED, 2 problem(s): Synth.item.json missing; Synth.index.json missing" in capsys.readouterr().out


def test_targets_already_in_history_are_counted_and_explained(tmp_path):
    # test item = the last, validation item = the one before; "in history" = among the items before it
    seqs = {"a": [1, 2, 1],        # test 1 in [1, 2]
            "b": [3, 4, 3, 5],     # validation 3 in [3, 4]; test 5 is new
            "c": [6, 7, 7, 7],     # validation 7 in [6, 7], test 7 in [6, 7, 7]
            "d": [8, 9, 10],       # nothing repeated
            "e": [11, 11]}         # too short for leave-one-out: counted in neither
    folder = tmp_path / "R"
    folder.mkdir()
    (folder / "R.inter.json").write_text(json.dumps(seqs))
    (folder / "R.index.json").write_text(json.dumps({str(i): [f"<a_{i}>", "<b_0>"] for i in range(1, 12)}))
    stats = {ln.name: ln.detail for ln in check_lcrec(folder, "R", {}).lines if ln.section == "statistics"}
    assert (stats["repeats"], stats["test_in_history"], stats["valid_in_history"]) == ("5", "2", "2")
    assert stats["targets in history"] == (
        "2 test item(s) (40.0% of the users) and 2 validation item(s) (40.0% of the users) already in the user's "
        "history: a ranking that excludes the history can never hit them (evaluation.exclude_history)")
    for exclude, tail in ((True, "the profile's evaluation.exclude_history: true masks them, so no row can hit them"),
                          (False, "the profile's evaluation.exclude_history: false keeps history items rankable")):
        lines = {ln.name: ln.detail for ln in check_lcrec(folder, "R", {}, exclude_history=exclude).lines}
        assert lines["targets in history"].endswith(tail)
    (folder / "R.inter.json").write_text(json.dumps({"a": [1, 2, 1], "d": [8, 9, 10]}))
    lines = {ln.name: ln.detail for ln in check_lcrec(folder, "R", {}).lines}
    assert lines["targets in history"].startswith("1 test item(s) (50.0% of the users) already in the user's history")
    (folder / "R.inter.json").write_text(json.dumps({"d": [8, 9, 10]}))
    assert "targets in history" not in {ln.name for ln in check_lcrec(folder, "R", {}, exclude_history=True).lines}


def test_targets_in_history_note_names_each_exclude_history_setting_that_differs(tmp_path):
    folder = tmp_path / "R"
    folder.mkdir()
    (folder / "R.inter.json").write_text(json.dumps({"a": [1, 2, 1]}))
    (folder / "R.index.json").write_text(json.dumps({str(i): [f"<a_{i}>", "<b_0>"] for i in (1, 2)}))

    def note(settings):
        return {ln.name: ln.detail for ln in check_lcrec(folder, "R", {}, exclude_history=settings).lines}[
            "targets in history"].split(": ", 1)[1]

    names = ("evaluation.exclude_history", "gnn.train.exclude_history", "baselines.sasrec.exclude_history")
    assert note(dict.fromkeys(names, False)) == (
        "the profile's evaluation.exclude_history, gnn.train.exclude_history, baselines.sasrec.exclude_history: "
        "false keeps history items rankable")
    assert note(dict(zip(names, (False, False, True)))) == (
        "the profile's evaluation.exclude_history: false keeps them rankable in the decoded rows; "
        "baselines.sasrec.exclude_history: true masks them in that scorer's early stopping and its own row")
    assert note(dict(zip(names, (True, False, True)))) == (
        "the profile's evaluation.exclude_history: true masks them in the decoded rows; "
        "gnn.train.exclude_history: false keeps them in that scorer's early stopping and its own row")


def test_the_history_settings_named_are_those_in_effect_in_the_profile():
    from agrec.config import load_profile
    from agrec.data.check import _history_settings

    # Games: the LM's checkpoint is chosen by decoding (lm.select: ndcg), SASRec is a scorer
    assert list(_history_settings(load_profile(CONFIGS / "games-cpu.yaml"))) == [
        "evaluation.exclude_history", "gnn.train.exclude_history", "lm.select_exclude_history",
        "baselines.sasrec.exclude_history"]
    # the paper's setting: the last LM checkpoint, LightGCN the only scorer
    assert list(_history_settings(load_profile(CONFIGS / "instruments-llama1b.yaml"))) == [
        "evaluation.exclude_history", "gnn.train.exclude_history"]
    assert _history_settings(load_profile(CONFIGS / "yelp-cpu.yaml")) == {
        "evaluation.exclude_history": False, "gnn.train.exclude_history": False,
        "baselines.sasrec.exclude_history": False}
