import numpy as np

from agrec.data.stage import prepare_data
from agrec.run.session import open_session

from conftest import CI_PROFILE


def test_data_stage_saves_and_reuses_artefacts(tmp_path):
    s = open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep")
    ds, split = prepare_data(s)
    rec = s.run.record_path("data")
    stamp = rec.stat().st_mtime_ns
    ds2, split2 = prepare_data(s)  # cached: the record is not rewritten
    assert rec.stat().st_mtime_ns == stamp
    assert ds2.user_ids == ds.user_ids and ds2.item_ids == ds.item_ids and ds2.item_text == ds.item_text
    assert all(np.array_equal(a, b) for a, b in zip(ds.sequences, ds2.sequences))
    np.testing.assert_array_equal(split.test, split2.test)
    assert ds2.item_info.loc[0, "genres"] == ["Animation", "Children's", "Comedy"]
    # a change in the data section reruns the stage
    s2 = open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep",
                      overrides={"data.min_seq_len": 25})
    ds3, _ = prepare_data(s2)
    assert ds3.n_users < ds.n_users and ds3.n_filtered_users == ds.n_users - ds3.n_users
    assert rec.stat().st_mtime_ns != stamp


def test_head_share_is_the_interaction_share_of_the_top_fifth():
    import numpy as np

    from agrec.data.stats import head_share

    assert head_share(np.array([1, 5, 1, 3])) == 0.5                      # top round(0.8) = 1 item: 5 of 10
    assert head_share(np.array([4, 1, 1, 1, 1, 1, 1, 1, 1, 3])) == 7 / 15   # top 2 of 10 items: 4 + 3
    assert head_share(np.zeros(3)) == 0.0
