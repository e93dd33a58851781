"""Phantom generator speed: seconds per 64^3 case on one core (generate + write) and cases/s with 2 processes.

Run: python benchmarks/bench_phantoms.py [--cases N]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nnunetv2_malenia.attributes import load_knowledge_table
from nnunetv2_malenia.phantoms.dataset import split_diseases, write_phantom_dataset
from nnunetv2_malenia.phantoms.generator import PhantomConfig, generate_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=8)
    args = parser.parse_args()
    table = load_knowledge_table()
    labelled, _ = split_diseases(table, "all", False)
    config = PhantomConfig(size=(64, 64, 64), labelled=labelled, seed=0)
    generate_case(table.diseases, config, 0)   # warm imports / caches
    t0 = time.perf_counter()
    for i in range(args.cases):
        generate_case(table.diseases, config, i)
    gen = (time.perf_counter() - t0) / args.cases
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_phantom_dataset(Path(tmp) / "d1", table, config, args.cases, num_processes=1)
        single = (time.perf_counter() - t0) / args.cases
        t0 = time.perf_counter()
        write_phantom_dataset(Path(tmp) / "d2", table, config, args.cases, num_processes=2)
        rate2 = args.cases / (time.perf_counter() - t0)
    print(f"64^3 generate only, 1 core : {gen:.3f} s/case")
    print(f"64^3 generate+write, 1 core: {single:.3f} s/case")
    print(f"64^3 generate+write, -np 2 : {rate2:.2f} cases/s")


if __name__ == "__main__":
    main()
