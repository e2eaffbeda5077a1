"""The ``baselines`` section of a profile: SASRec's hyper-parameters and how it is trained.

Kept apart from the models so that loading a profile does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agrec.canonical import neutral, runtime
from agrec.devices import check_device
from agrec.errors import ConfigError

VALID_METRICS: tuple[str, ...] = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")


@dataclass
class SASRecConfig:
    """SASRec (Kang & McAuley, ICDM 2018) trained with full-softmax cross-entropy.

    Model defaults: RecBole 1.2.1 ``recbole/properties/model/SASRec.yaml`` (``n_layers: 2``, ``n_heads: 2``,
    ``hidden_size: 64``, ``inner_size: 256``, ``hidden_dropout_prob: 0.5``, ``attn_dropout_prob: 0.5``,
    ``hidden_act: gelu``, ``layer_norm_eps: 1e-12``, ``initializer_range: 0.02``, ``loss_type: CE``);
    ``max_seq_length: 50``, ``learning_rate: 0.001``, ``train_batch_size: 2048``, ``eval_step: 1`` and
    ``stopping_step: 10`` from RecBole 1.2.1 ``recbole/properties/overall.yaml`` / ``dataset/*.yaml``
    (``MAX_ITEM_LIST_LENGTH: 50``), its ``epochs: 300`` as the budget. RecBole stops once ``stopping_step + 1``
    evaluations in a row bring no improvement, so ``patience: 11`` is its ``stopping_step: 10``.

    ``train_stride``: how the training sequences are cut (see :func:`agrec.baselines.sasrec.training_windows`).
    1 trains exactly RecBole's (context, target) pairs — every prefix of a user's training sequence, truncated to
    its last ``max_seq_length`` items, predicts the next item — but shares one forward pass among the prefixes of
    a window; a larger stride trains fewer, cheaper windows in which every target still sees at least
    ``max_seq_length - train_stride + 1`` preceding items.
    """

    hidden_size: int = 64  # width of the item and position embeddings and of each block (RecBole)
    n_layers: int = 2  # transformer blocks (RecBole)
    n_heads: int = 2  # attention heads per block (RecBole)
    inner_size: int = 256  # width of each block's feed-forward layer (RecBole)
    hidden_dropout_prob: float = 0.5  # dropout on embeddings and block outputs (RecBole)
    attn_dropout_prob: float = 0.5  # dropout on the attention weights (RecBole)
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon (RecBole)
    initializer_range: float = 0.02  # std of the normal initialisation of weights (RecBole)
    max_seq_length: int = 50  # the most recent items a user's sequence keeps (RecBole MAX_ITEM_LIST_LENGTH)
    learning_rate: float = 1e-3  # Adam learning rate (RecBole)
    batch_size: int = 2048  # training targets (next-item predictions) per optimiser step
    train_stride: int = 1  # items between training windows' ends; 1 = every prefix, as RecBole (see above)
    # "shuffle": batches of shuffled windows (RecBole's way, and the behaviour before the option existed);
    # "bucket": windows of about one length per batch, batches shuffled (agrec/baselines/trainer.py target_batches)
    batching: str = neutral("shuffle")
    epochs: int = 300  # the budget: at most this many epochs (RecBole)
    eval_every: int = 1  # epochs between validation evaluations
    patience: int = 11  # evaluations without improvement before stopping
    valid_metric: str = "NDCG@10"  # model selection on the validation item (never the test item)
    # Mask the user's history when ranking (the project's protocol, as for the GNNs). RecBole's sequential
    # full-sort evaluation masks nothing: False reproduces it (and suits data with repeat consumption).
    exclude_history: bool = True
    # Runtime keys (recorded, never hashed; the model key has always left them out).
    device: str = runtime("cpu")  # "cpu", "cuda", "cuda:N" or "auto" (cuda when available)
    progress: bool = runtime(True)  # tqdm bar over epochs

    def __post_init__(self) -> None:
        where = "baselines.sasrec"
        for key in (
            "hidden_size",
            "n_layers",
            "n_heads",
            "inner_size",
            "max_seq_length",
            "batch_size",
            "train_stride",
            "epochs",
            "eval_every",
            "patience",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}.{key} must be > 0, got {getattr(self, key)}")
        if self.hidden_size % self.n_heads:
            raise ConfigError(f"{where}.hidden_size ({self.hidden_size}) must be divisible by n_heads ({self.n_heads})")
        for key in ("hidden_dropout_prob", "attn_dropout_prob"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key} must be in [0, 1), got {getattr(self, key)}")
        for key in ("layer_norm_eps", "initializer_range", "learning_rate"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{where}.{key} must be > 0, got {getattr(self, key)}")
        if self.train_stride > self.max_seq_length:
            raise ConfigError(
                f"{where}.train_stride ({self.train_stride}) must be <= max_seq_length ({self.max_seq_length})"
            )
        if self.valid_metric not in VALID_METRICS:
            raise ConfigError(f"{where}.valid_metric must be one of {list(VALID_METRICS)}, got {self.valid_metric!r}")
        if self.batching not in ("shuffle", "bucket"):
            raise ConfigError(f"{where}.batching must be 'shuffle' or 'bucket', got {self.batching!r}")
        check_device(self.device, f"{where}.device")


@dataclass
class BaselinesConfig:
    """Profile section ``baselines``."""

    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
