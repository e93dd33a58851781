"""Stored text embeddings of attribute descriptions (one row per distinct (aspect, text))."""
from nnunetv2_malenia.text_bank.bank import (BANK_ASPECTS, PARAGRAPH_ASPECT, TextBank, load_bank, paragraph_text,
                                             save_bank)
from nnunetv2_malenia.text_bank.encoder import DEFAULT_ENCODER, TextEncoder

__all__ = ["BANK_ASPECTS", "PARAGRAPH_ASPECT", "TextBank", "load_bank", "paragraph_text", "save_bank",
           "DEFAULT_ENCODER", "TextEncoder"]
