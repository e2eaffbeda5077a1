"""Semantic item IDs: item text -> embedding -> RQ-VAE codes -> collision-free :class:`CodeTable`.

The stage entry points live in :mod:`agrec.semantic_ids.stage` (``prepare_codes``,
``prepare_semantic_ids``); they are not imported here because the profile (``agrec.config``) imports
this package's config module.
"""

from agrec.semantic_ids.codes import CodeTable, code_token, parse_code_token
from agrec.semantic_ids.dedup import DedupReport, make_collision_free

__all__ = ["CodeTable", "code_token", "parse_code_token", "DedupReport", "make_collision_free"]
