import numpy as np
import pandas as pd
import torch

from agrec.analysis.embeddings import first_genres, lm_code_embeddings, sample_items, tsne_2d, tsne_figure


class _Emb(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.e = torch.nn.Embedding(6, 2)
        with torch.no_grad():
            self.e.weight.copy_(torch.arange(12, dtype=torch.float32).view(6, 2))

    def get_input_embeddings(self):
        return self.e


def test_lm_code_embeddings_average_the_code_rows():
    out = lm_code_embeddings(_Emb(), np.array([[1, 3], [2, 5]]))
    np.testing.assert_allclose(out, [[(2 + 6) / 2, (3 + 7) / 2], [(4 + 10) / 2, (5 + 11) / 2]])


def test_first_genres_and_sample():
    info = pd.DataFrame({"genres": [["Drama", "War"], [], "Comedy|Romance"]})
    assert first_genres(info, 3) == ["Drama", "?", "Comedy"]
    assert first_genres(pd.DataFrame(), 2) == ["?", "?"]
    s = sample_items(100, 10, seed=1)
    assert len(s) == 10 and np.all(np.diff(s) > 0)
    np.testing.assert_array_equal(s, sample_items(100, 10, seed=1))
    np.testing.assert_array_equal(sample_items(5, 10, seed=1), np.arange(5))


def test_tsne_separates_two_clusters_deterministically():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 5)), rng.normal(5, 0.1, (20, 5))])
    y = tsne_2d(x, perplexity=30, seed=0)
    assert y.shape == (40, 2)
    np.testing.assert_array_equal(y, tsne_2d(x, perplexity=30, seed=0))
    a, b = y[:20].mean(0), y[20:].mean(0)
    assert np.linalg.norm(a - b) > 3 * max(y[:20].std(0).max(), y[20:].std(0).max())
    fig = tsne_figure({"x": y}, {"cluster": ["a"] * 20 + ["b"] * 20, "genre": ["?"] * 40})
    by_cluster, by_genre = fig.axes
    assert [by_cluster.get_title(), by_genre.get_title()] == ["x · coloured by cluster", "x · coloured by genre"]
    # every item is drawn where t-SNE put it, and the two clusters get two colours, the one genre one colour
    dots = by_cluster.collections[0]
    np.testing.assert_array_equal(dots.get_offsets(), y)
    colours = [tuple(c) for c in dots.get_facecolors()]
    assert len(set(colours[:20])) == len(set(colours[20:])) == 1 and colours[0] != colours[20]
    assert len({tuple(c) for c in by_genre.collections[0].get_facecolors()}) == 1
    assert [t.get_text() for t in by_cluster.get_legend().get_texts()] == ["a", "b"]
