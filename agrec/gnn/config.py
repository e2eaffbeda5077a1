"""The ``gnn`` section of a profile: which GNNs to train, their hyper-parameters, how to train them.

The model configs live here, beside their models (``lightgcn.py``, ``sgl.py``, ``xsimgcl.py``), so that
loading a profile does not import torch. Each default names its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agrec.canonical import runtime
from agrec.devices import check_device
from agrec.errors import ConfigError

GNN_MODELS: tuple[str, ...] = ("lightgcn", "sgl", "xsimgcl")
VALID_METRICS: tuple[str, ...] = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")
# How the GNN scores the *test* item (see GNNTrainConfig.test_graph; agrec/gnn/graph.py builds the graphs).
TEST_GRAPHS: tuple[str, ...] = ("propagate", "refit", "train")


def check_model_config(section: str, cfg: Any) -> None:
    """Range checks shared by the model configs (``embedding_dim``, ``n_layers``, ``reg_weight``)."""
    if cfg.embedding_dim <= 0:
        raise ConfigError(f"gnn.{section}.embedding_dim must be > 0, got {cfg.embedding_dim}")
    if cfg.n_layers < 0:
        raise ConfigError(f"gnn.{section}.n_layers must be >= 0, got {cfg.n_layers}")
    if cfg.reg_weight < 0:
        raise ConfigError(f"gnn.{section}.reg_weight must be >= 0, got {cfg.reg_weight}")


@dataclass
class LightGCNConfig:
    """Defaults: AGRec paper §4.1 (LightGCN dimension 512) and the authors' released
    ``gnns/conf/LightGCN.conf`` (``-n_layer 2``, ``reg.lambda=0.0001``); learning rate 1e-3 and batch
    size 2048 are in the shared training section (:class:`agrec.gnn.config.GNNTrainConfig`)."""

    embedding_dim: int = 512  # width of the user and item embeddings (paper §4.1)
    n_layers: int = 2  # propagation layers; the final embedding averages layers 0..n_layers (authors' -n_layer)
    reg_weight: float = 1e-4  # L2 weight on the batch's layer-0 embeddings, added to BPR (authors' reg.lambda)

    def __post_init__(self) -> None:
        check_model_config("lightgcn", self)


@dataclass
class SGLConfig:
    """Defaults: SGL paper §4 (edge dropout ρ = 0.1, temperature τ = 0.2, SSL weight λ₁ = 0.1), as in
    the AGRec authors' ``gnns/conf/SGL.conf`` (``-n_layer 2 -lambda 0.1 -droprate 0.1 -temp 0.2``);
    embedding size 512 as AGRec's LightGCN so that the ablation compares like with like."""

    embedding_dim: int = 512  # width of the user and item embeddings (as AGRec's LightGCN)
    n_layers: int = 2  # propagation layers; the final embedding averages layers 0..n_layers (SGL.conf -n_layer)
    reg_weight: float = 1e-4  # L2 weight on the batch's layer-0 embeddings, added to BPR (as LightGCN)
    ssl_weight: float = 0.1  # λ₁
    ssl_tau: float = 0.2  # τ
    drop_ratio: float = 0.1  # ρ, share of edges dropped in each view

    def __post_init__(self) -> None:
        check_model_config("sgl", self)
        if self.ssl_weight < 0:
            raise ConfigError(f"gnn.sgl.ssl_weight must be >= 0, got {self.ssl_weight}")
        if self.ssl_tau <= 0:
            raise ConfigError(f"gnn.sgl.ssl_tau must be > 0, got {self.ssl_tau}")
        if not 0 <= self.drop_ratio < 1:
            raise ConfigError(f"gnn.sgl.drop_ratio must be in [0, 1), got {self.drop_ratio}")


@dataclass
class XSimGCLConfig:
    """Defaults: the AGRec authors' ``gnns/conf/XSimGCL.conf`` (``-lambda 0.2 -eps 0.2 -tau 0.15 -l* 1``),
    with 2 layers and size 512 as AGRec's LightGCN so that the ablation compares like with like."""

    embedding_dim: int = 512  # width of the user and item embeddings (as AGRec's LightGCN)
    n_layers: int = 2  # propagation layers (>= 1); the final embedding averages layers 1..n_layers (no layer 0)
    reg_weight: float = 1e-4  # L2 weight on the batch's layer-0 embeddings, added to BPR (as LightGCN)
    cl_weight: float = 0.2  # λ
    eps: float = 0.2  # ε, noise magnitude
    cl_tau: float = 0.15  # τ
    cl_layer: int = 1  # l*, the layer contrasted with the final embeddings

    def __post_init__(self) -> None:
        check_model_config("xsimgcl", self)
        if self.n_layers < 1:
            raise ConfigError(
                f"gnn.xsimgcl.n_layers must be >= 1 (layer 0 is not part of XSimGCL's output), got {self.n_layers}"
            )
        if not 1 <= self.cl_layer <= self.n_layers:
            raise ConfigError(f"gnn.xsimgcl.cl_layer must be in 1..n_layers={self.n_layers}, got {self.cl_layer}")
        if self.cl_weight < 0 or self.eps < 0:
            raise ConfigError(f"gnn.xsimgcl.cl_weight and eps must be >= 0, got {self.cl_weight}, {self.eps}")
        if self.cl_tau <= 0:
            raise ConfigError(f"gnn.xsimgcl.cl_tau must be > 0, got {self.cl_tau}")


@dataclass
class GNNTrainConfig:
    """Optimisation and model selection, shared by every GNN.

    Defaults: learning rate and batch size from the AGRec authors' ``gnns/conf/LightGCN.conf``
    (``learnRate=0.001``, ``batch_size=2048``, ``num.max.epoch=150``, evaluated every 5 epochs). Unlike
    that code, which picks the best epoch on the *test* items, the model is selected on validation
    NDCG@10 and training stops after ``patience`` evaluations without improvement.

    ``test_graph`` says what the GNN may see when it scores the test item. The validation item is
    always scored by the model trained on the training split. For the test item, where the LM's
    prompt already contains the validation item, the leakage-free standard lets the GNN see it too:

    - ``"propagate"`` (default): the trained layer-0 embeddings propagated over the train + validation
      graph (same normalisation), no retraining;
    - ``"refit"``: a model retrained on train + validation from the same seed for ``best_epoch`` epochs
      (the count chosen on validation), no model selection;
    - ``"train"``: the training-split model as it is (the validation item is not an edge), for comparison.

    The test item is never an edge in any of them.
    """

    epochs: int = 150  # at most this many passes over the training edges (authors' num.max.epoch)
    batch_size: int = 2048  # BPR triples (user, positive, sampled negative) per step (authors' conf)
    learning_rate: float = 1e-3  # Adam (authors' learnRate)
    eval_every: int = 5  # epochs between validation evaluations
    patience: int = 5  # evaluations without improvement before stopping
    valid_metric: str = "NDCG@10"  # the model-selection metric (on the validation item)
    exclude_history: bool = True  # mask the user's history when ranking (False: repeat consumption)
    # Runtime keys (recorded, never hashed; the model key has always left them out): where the model
    # trains and whether a bar is shown. A model trained on a GPU is reused on CPU; its record names the device.
    device: str = runtime("cpu")  # "cpu", "cuda", "cuda:1", or "auto" (cuda when available)
    progress: bool = runtime(True)  # tqdm progress bar over epochs
    test_graph: str = "propagate"  # test-time scoring: "propagate" | "refit" | "train" (see above)

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_every", "patience"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"gnn.train.{key} must be > 0, got {getattr(self, key)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"gnn.train.learning_rate must be > 0, got {self.learning_rate}")
        if self.valid_metric not in VALID_METRICS:
            raise ConfigError(f"gnn.train.valid_metric must be one of {list(VALID_METRICS)}, got {self.valid_metric!r}")
        if self.test_graph not in TEST_GRAPHS:
            raise ConfigError(f"gnn.train.test_graph must be one of {list(TEST_GRAPHS)}, got {self.test_graph!r}")
        check_device(self.device, "gnn.train.device")


@dataclass
class GNNConfig:
    """Profile section ``gnn``."""

    model: str = "lightgcn"  # the GNN whose top-n steers the decoder
    models: list[str] = field(default_factory=lambda: ["lightgcn"])  # the GNNs the stage trains
    train: GNNTrainConfig = field(default_factory=GNNTrainConfig)
    lightgcn: LightGCNConfig = field(default_factory=LightGCNConfig)
    sgl: SGLConfig = field(default_factory=SGLConfig)
    xsimgcl: XSimGCLConfig = field(default_factory=XSimGCLConfig)

    def __post_init__(self) -> None:
        if self.model not in GNN_MODELS:
            raise ConfigError(f"gnn.model must be one of {list(GNN_MODELS)}, got {self.model!r}")
        unknown = [m for m in self.models if m not in GNN_MODELS]
        if unknown:
            raise ConfigError(f"gnn.models: unknown model(s) {unknown}; known: {list(GNN_MODELS)}")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"gnn.models lists a model twice: {self.models}")

    def stage_models(self) -> list[str]:
        """The models the stage trains: ``models``, plus ``model`` if it is not listed."""
        return list(self.models) + ([self.model] if self.model not in self.models else [])

    def model_config(self, name: str) -> LightGCNConfig | SGLConfig | XSimGCLConfig:
        if name not in GNN_MODELS:
            raise ConfigError(f"unknown GNN {name!r}; known: {list(GNN_MODELS)}")
        return getattr(self, name)
