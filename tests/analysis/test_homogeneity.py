import numpy as np

from agrec.analysis.homogeneity import distinct_prefixes

CODES = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1]])


def test_distinct_prefixes_hand_counted():
    beams = np.array([[0, 1, 2, -1],    # a-prefixes {0}; ab {00, 01}; abc 3 items
                      [0, 3, 4, 2],     # a {0, 1}; ab {00, 10, 11, 01}; abc 4
                      [-1, -1, -1, -1]])
    np.testing.assert_array_equal(distinct_prefixes(beams, CODES), [[1, 2, 3], [2, 4, 4], [0, 0, 0]])


def test_summary_means_skip_users_without_beams():
    from agrec.analysis.homogeneity import homogeneity_figure, homogeneity_summary

    counts = distinct_prefixes(np.array([[0, 1, 2, -1], [0, 3, 4, 2], [-1, -1, -1, -1]]), CODES)
    df = homogeneity_summary({"α=0": counts, "α=0.3": np.array([[1, 1, 1], [1, 2, 2], [0, 0, 0]])}, n_beams=4)
    assert df["users"].tolist() == [2, 2]
    assert df[["mean L1", "mean L2", "mean L3"]].values.tolist() == [[1.5, 3.0, 3.5], [1.0, 1.5, 1.5]]
    assert df["median L1"].tolist() == [1.5, 1.0]
    fig = homogeneity_figure({"α=0": counts}, n_beams=4)
    # per level, a histogram of the two users with beams (counts [1, 2, 3] and [2, 4, 4]), the empty user left out
    for ax, values in zip(fig.axes, ([1, 2], [2, 4], [3, 4])):
        hist = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax.patches if p.get_height()}
        assert hist == {v: values.count(v) for v in values}
    means = [ax.get_legend().get_texts()[0].get_text() for ax in fig.axes]
    assert means == ["α=0 (mean 1.50)", "α=0 (mean 3.00)", "α=0 (mean 3.50)"]
