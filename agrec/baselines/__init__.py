"""Baseline recommenders evaluated in the same protocol as AGRec (same split, metrics, history exclusion).

``sasrec``: SASRec with full-softmax cross-entropy (:mod:`agrec.baselines.sasrec`), cached training in
:mod:`agrec.baselines.stage`. Configs live in :mod:`agrec.baselines.config` so that loading a profile does
not import torch.
"""
