"""Semantic item IDs: the code table (and, later, text embeddings, RQ-VAE, de-duplication)."""

from agrec.semantic_ids.codes import CodeTable, code_token, parse_code_token

__all__ = ["CodeTable", "code_token", "parse_code_token"]
