"""The backbone LM: code tokens in the vocabulary, prompts, fine-tuning (full or LoRA), checkpoints.

The stage entry points are :func:`agrec.lm.stage.train_lm` and :func:`agrec.lm.stage.load_lm`
(imported from there: importing this package stays light).
"""

from agrec.lm.config import LMConfig, LoRASettings, TinyLlamaConfig

__all__ = ["LMConfig", "LoRASettings", "TinyLlamaConfig"]
