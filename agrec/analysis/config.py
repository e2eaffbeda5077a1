"""Knobs of the analysis notebook (06_analysis): which user the case study shows, the bucket counts of the
complementarity breakdown, the t-SNE sample. None of them changes a number of any other stage."""

from __future__ import annotations

from dataclasses import dataclass

from agrec.errors import ConfigError


@dataclass
class AnalysisConfig:
    """The ``analysis`` section of a profile.

    ``k`` is the cut-off of the hit indicators (paper Fig. 1 uses HR@10); ``homogeneity_beams`` the number of
    top beams whose prefixes are counted (paper Fig. 2: the 20 beams of the released test.sh).
    """

    k: int = 10  # paper Fig. 1: users hit@10
    homogeneity_beams: int = 20  # paper Fig. 2: top-20 beams
    activity_buckets: int = 4  # quantile buckets of history length
    popularity_buckets: int = 4  # quantile buckets of the target's training popularity
    case_user: int | None = None  # None: the first user hit by AGRec but missed at alpha = 0
    explorer_users: int = 50  # users offered by the beam explorer (prompts built once)
    tsne_items: int = 600  # items in the t-SNE sample (all when larger than the catalogue)
    tsne_perplexity: float = 30.0  # t-SNE perplexity (scikit-learn's default)
    target: str = "test"  # which held-out item the analysis looks at

    def __post_init__(self) -> None:
        for name in ("k", "homogeneity_beams", "activity_buckets", "popularity_buckets", "explorer_users"):
            if getattr(self, name) < 1:
                raise ConfigError(f"analysis.{name} must be >= 1, got {getattr(self, name)}")
        if self.tsne_items < 10:
            raise ConfigError(f"analysis.tsne_items must be >= 10, got {self.tsne_items}")
        if not self.tsne_perplexity > 0:
            raise ConfigError(f"analysis.tsne_perplexity must be > 0, got {self.tsne_perplexity}")
        if self.case_user is not None and self.case_user < 0:
            raise ConfigError(f"analysis.case_user must be a user index >= 0 or null, got {self.case_user}")
        if self.target not in ("valid", "test"):
            raise ConfigError(f"analysis.target must be 'valid' or 'test', got {self.target!r}")
