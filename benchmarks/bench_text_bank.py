"""Benchmark (not a test): load the default text encoder and encode 1,000 distinct realistic descriptions.

Goal: under 15 s for the encode on 2 CPU cores. Run: python benchmarks/bench_text_bank.py
"""
from __future__ import annotations

import itertools
import os
import time

import torch

from nnunetv2_malenia.text_bank.encoder import DEFAULT_ENCODER, TextEncoder

_SHAPES = ["round", "oval", "lobulated", "irregular", "infiltrative"]
_DENSITIES = ["hypodense", "hyperdense", "isodense", "mixed-density"]
_MARGINS = ["well-defined", "ill-defined", "spiculated", "smooth"]
_ORGANS = ["left kidney", "right kidney", "liver segment VII", "pancreatic head", "pancreatic tail", "spleen",
           "gallbladder wall", "colon wall", "bladder wall", "left lung upper lobe", "esophageal wall", "stomach"]
_EXTRAS = ["with a necrotic core", "with peripheral enhancement", "with cystic degeneration", "with calcifications",
           "abutting the vessels with an unclear boundary"]


def realistic_descriptions(count: int) -> list[str]:
    """Distinct radiology-style sentences built from typical attribute phrases (count <= 4,800)."""
    combos = itertools.product(_SHAPES, _DENSITIES, _MARGINS, _ORGANS, _EXTRAS)
    texts = [f"{margin} {shape} {density} lesion in the {organ} {extra}"
             for shape, density, margin, organ, extra in combos]
    return texts[:count]


def main() -> None:
    texts = realistic_descriptions(1000)
    assert len(set(texts)) == 1000
    start = time.perf_counter()
    encoder = TextEncoder(DEFAULT_ENCODER)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    embeddings = encoder.encode(texts, progress=False)   # [1000, 384]
    encode_s = time.perf_counter() - start
    print(f"hardware: os.cpu_count()={os.cpu_count()}, usable cores={len(os.sched_getaffinity(0))}, "
          f"torch threads={torch.get_num_threads()}, torch {torch.__version__}")
    print(f"encoder {encoder.encoder_id}: dim {encoder.dim}, batch size {encoder.batch_size}")
    print(f"load: {load_s:.2f} s")
    print(f"encode {embeddings.shape[0]} texts: {encode_s:.2f} s ({embeddings.shape[0] / encode_s:.0f} texts/s)")
    print(f"goal < 15 s encode on 2 cores: {'met' if encode_s < 15 else 'NOT met'}")


if __name__ == "__main__":
    main()
