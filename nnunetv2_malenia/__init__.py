"""Malenia (ICLR 2025) zero-shot lesion segmentation as an nnU-Net v2 plugin.

Data flow, one subpackage per step:
attributes (tables, dataset attribute files) -> text_bank (stored embeddings) -> phantoms (demo data)
-> network / losses (MaleniaNet, matcher, criterion) -> training (nnUNetTrainerMalenia) -> inference (reports).
"""

__version__ = "0.1.0"
