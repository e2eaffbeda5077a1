"""Residual quantiser, Sinkhorn, RQ-VAE training: exact small cases, gradients, determinism, checkpoints."""
import numpy as np
import pytest
import torch

from agrec.errors import ConfigError, DataError
from agrec.semantic_ids.config import RQVAEConfig, SemanticIdConfig
from agrec.semantic_ids.quantize import ResidualQuantizer, VectorQuantizer, kmeans_centroids, sinkhorn_assign
from agrec.semantic_ids.rqvae import auto_hidden_dims
from agrec.semantic_ids.stage import load_rqvae, save_rqvae
from agrec.semantic_ids.train import collision_rate, residual_kmeans, train_rqvae


@pytest.fixture(autouse=True)
def one_thread():
    # a tiny MLP: threads only add spin-waits on a busy 2-core machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def clustered(n=240, d=24, k=8, seed=0, labels=False):
    """n points around k well-separated centres, unit-normalised like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    lab = rng.integers(0, k, n)
    x = centres[lab] + rng.normal(size=(n, d)) * 0.3
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return (x, lab) if labels else x


def test_auto_hidden_dims_follow_lcrec_rule():
    assert auto_hidden_dims(4096, 32) == [2048, 1024, 512, 256, 128, 64]
    assert auto_hidden_dims(384, 32) == [192, 96, 48]
    assert auto_hidden_dims(32, 32) == []


def test_paper_defaults():
    c = RQVAEConfig()
    assert (c.n_levels, c.codebook_size, c.code_dim, c.beta) == (4, 256, 32, 0.25)
    assert c.kmeans_init and c.epochs == 3000 and c.batch_size == 1024 and c.lr == 1e-3
    with pytest.raises(ConfigError, match=r"semantic_ids.rqvae.beta: out of range"):
        RQVAEConfig(beta=-1)
    with pytest.raises(ConfigError, match="lm_model"):
        SemanticIdConfig(encoder="lm", lm_model="gpt2")


def test_vector_quantizer_distances_and_loss_by_hand():
    vq = VectorQuantizer(codebook_size=2, dim=2, beta=0.25)
    vq.codebook.data = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    r = torch.tensor([[0.5, 0.0], [1.5, 1.0]], requires_grad=True)
    torch.testing.assert_close(vq.distances(r), torch.tensor([[0.25, 2.25], [3.25, 1.25]]))
    q, codes, loss = vq(r)
    assert codes.tolist() == [0, 1]
    # codebook term mean((q - r)^2) = (0.25 + 0 + 0.25 + 1) / 4 = 0.375, commitment the same x 0.25
    assert float(loss.detach()) == pytest.approx(0.375 * 1.25)


def test_residual_quantizer_straight_through_and_residuals():
    rq = ResidualQuantizer(n_levels=2, codebook_size=2, dim=1)
    rq.levels[0].codebook.data = torch.tensor([[0.0], [4.0]])
    rq.levels[1].codebook.data = torch.tensor([[-1.0], [1.0]])
    z = torch.tensor([[3.2], [0.6]], requires_grad=True)
    z_st, codes, _ = rq(z)
    assert codes.tolist() == [[1, 0], [0, 1]]        # 3.2 -> 4 then residual -0.8 -> -1; 0.6 -> 0 then 0.6 -> 1
    torch.testing.assert_close(z_st, torch.tensor([[3.0], [1.0]]))
    z_st.sum().backward()                            # straight-through: d z_st / d z = identity
    torch.testing.assert_close(z.grad, torch.ones_like(z))
    c2, z_q, dist = rq.quantize(z)
    assert c2.tolist() == codes.tolist() and dist.shape == (2, 2)


def test_sinkhorn_balances_an_unbalanced_assignment():
    # 8 points all nearer to code 0 than to code 1: argmin puts all on 0, Sinkhorn splits 4 / 4,
    # giving code 1 to the 4 points that are relatively closest to it.
    x = torch.linspace(0, 0.7, 8)[:, None]
    dist = torch.cat([x ** 2, (x - 2) ** 2], dim=1)
    assert dist.argmin(1).tolist() == [0] * 8
    a = sinkhorn_assign(dist, epsilon=0.05, n_iters=100)
    assert a.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_kmeans_centroids_pad_when_fewer_points_than_codes():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    c = kmeans_centroids(x, k=4, seed=0)
    assert c.shape == (4, 2)
    assert {tuple(np.round(r, 6)) for r in c[:2]} == {(0.0, 0.0), (1.0, 1.0)}


def test_rqvae_training_is_deterministic_and_improves():
    x, lab = clustered(labels=True)
    cfg = RQVAEConfig(n_levels=2, codebook_size=8, code_dim=8, epochs=20, batch_size=128, eval_every=5)
    a = train_rqvae(x, cfg, seed=3, progress=False)
    b = train_rqvae(x, cfg, seed=3, progress=False)
    np.testing.assert_array_equal(a.codes, b.codes)
    pd_a, pd_b = a.log.fillna(-1), b.log.fillna(-1)
    assert pd_a.equals(pd_b)
    c = train_rqvae(x, cfg, seed=4, progress=False)
    assert not np.array_equal(a.codes, c.codes)
    log = a.log.dropna(subset=["loss"])
    assert log["recon"].iloc[-1] < log["recon"].iloc[0]
    assert a.best_epoch in (5, 10, 15, 20)                        # epoch 0 is not a candidate
    assert a.codes.shape == (240, 2) and a.last_dist.shape == (240, 8)
    # 8 tight clusters, 8 first codes: each cluster lands (almost) entirely on one first code
    purity = sum(np.bincount(a.codes[lab == k, 0]).max() for k in range(8)) / len(lab)
    assert purity > 0.95


def test_rqvae_checkpoint_round_trip_gives_same_codes(tmp_path):
    x = clustered(n=64)
    res = train_rqvae(x, RQVAEConfig(n_levels=2, codebook_size=4, code_dim=4, epochs=5, eval_every=5,
                                     sinkhorn_epsilon=0.01), seed=0, progress=False)
    save_rqvae(tmp_path, res.model)
    back = load_rqvae(tmp_path)
    codes, _, _ = back.encode_codes(torch.from_numpy(x))
    np.testing.assert_array_equal(codes.numpy(), res.codes)
    assert back.hidden_dims == [12, 6]


def test_residual_kmeans_is_deterministic():
    x = clustered()
    cfg = RQVAEConfig(n_levels=2, codebook_size=8)
    a, b = residual_kmeans(x, cfg, seed=1), residual_kmeans(x, cfg, seed=1)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.model is None and a.log["collision_rate"].iloc[0] == collision_rate(a.codes)


def test_bad_embeddings_are_refused():
    x = clustered(n=10)
    x[3, 0] = np.nan
    with pytest.raises(DataError, match="row 3"):
        train_rqvae(x, RQVAEConfig(epochs=1), seed=0, progress=False)
    with pytest.raises(DataError, match=r"must be \[n_items >= 2, dim\]"):
        residual_kmeans(np.zeros(5, dtype=np.float32), RQVAEConfig(), seed=0)


def test_checkpoint_rule_and_patience():
    from agrec.semantic_ids.train import _better

    best = {"collision_rate": 0.10, "eval_recon": 0.5}
    assert _better({"collision_rate": 0.09, "eval_recon": 0.9}, best, tol=0.0)      # fewer collisions wins
    assert not _better({"collision_rate": 0.10, "eval_recon": 0.6}, best, tol=0.0)  # tie: higher recon loses
    assert _better({"collision_rate": 0.10, "eval_recon": 0.4}, best, tol=0.0)      # tie: lower recon wins
    assert _better({"collision_rate": 0.11, "eval_recon": 0.4}, best, tol=0.02)     # within tol: recon decides
    assert not _better({"collision_rate": 0.13, "eval_recon": 0.1}, best, tol=0.02)
    # patience 1: stop at the first evaluation that does not improve
    x = clustered(n=64)
    res = train_rqvae(x, RQVAEConfig(n_levels=1, codebook_size=2, code_dim=4, epochs=200, eval_every=1,
                                     patience=1), seed=0, progress=False)
    assert res.summary["epochs_run"] < 200
    assert res.log["epoch"].tolist() == list(range(res.summary["epochs_run"] + 1))


def test_rqvae_runs_in_the_configured_precision(tmp_path):
    x = clustered(n=64)
    cfg = RQVAEConfig(n_levels=2, codebook_size=4, code_dim=4, epochs=5, eval_every=5)
    assert cfg.dtype == "float64"  # the default: see docs/running.md "Reproducibility"
    res = train_rqvae(x, cfg, seed=0, progress=False)
    assert {p.dtype for p in res.model.state_dict().values()} == {torch.float64}
    assert res.last_dist.dtype == np.float64
    save_rqvae(tmp_path, res.model)
    back = load_rqvae(tmp_path)
    assert {p.dtype for p in back.state_dict().values()} == {torch.float64}
    codes, _, _ = back.encode_codes(torch.from_numpy(x))  # float32 input is cast to the model's dtype
    np.testing.assert_array_equal(codes.numpy(), res.codes)
    res32 = train_rqvae(x, RQVAEConfig(**{**cfg.__dict__, "dtype": "float32"}), seed=0, progress=False)
    assert {p.dtype for p in res32.model.state_dict().values()} == {torch.float32}
    km = residual_kmeans(x, cfg, seed=1)
    assert km.last_dist.dtype == np.float64
    with pytest.raises(ConfigError, match="dtype"):
        RQVAEConfig(dtype="float16")
