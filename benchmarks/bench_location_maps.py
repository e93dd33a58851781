"""Location maps added to a finished benchmark run: its Malenia model names lesions with each lesion's location
read from the test sets' organ maps (``nnUNetv2_malenia_predict --location-maps``), no retraining.

    python benchmarks/bench_location_maps.py --work /tmp/zs_quick --out docs/results/quick

bench_zero_shot.py predicts with location maps itself (profile setting ``located_seen_penalty``); this script adds
that section to the report of a run made before it did. ``--out`` is that run's report folder (benchmark.json names
its work folder, which must be ``--work``, and its predictions there must score as the report says). The run's
phantoms get their organ maps where they lack them: both phantom sets are rendered again from the run's seeds into a
scratch folder, and their test images and labels must come out identical to the run's, or the script stops; then
the test sets' ``locationsTs`` are copied over.
Predictions and scores are bench_zero_shot.py's own (``predict_generalised``, ``score_generalised``); benchmark.md
and benchmark.json are rewritten with the section, a note that says which script added it, and its steps' wall
times.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_zero_shot as bz  # noqa: E402  (beside this file)

LOCATIONS = "locationsTs"


def _same_volumes(a: Path, b: Path) -> bool:
    """Whether two folders hold the same files with the same voxel arrays."""
    import SimpleITK as sitk

    names = sorted(f.name for f in a.glob("*.nii.gz"))
    if names != sorted(f.name for f in b.glob("*.nii.gz")):
        return False
    return all(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(a / n))),
                              sitk.GetArrayFromImage(sitk.ReadImage(str(b / n)))) for n in names)


def add_location_maps(bench: bz.Bench) -> None:
    """Give the run's seen (A) and unseen (C) test sets their organ maps, rendered again from the run's seeds."""
    writers = {bz.SEEN_ID: bz.write_seen_phantoms, bz.UNSEEN_ID: bz.write_unseen_phantoms}
    for dataset_id, write in writers.items():
        dataset = bench.dataset(dataset_id)
        if (dataset / LOCATIONS).is_dir():
            continue
        with tempfile.TemporaryDirectory(dir=bench.work) as scratch:
            again = Path(scratch) / dataset.name
            write(bench, target=again)
            for folder in ("imagesTs", "labelsTs"):
                if not _same_volumes(dataset / folder, again / folder):
                    sys.exit(f"{dataset / folder}: rendering the phantoms again from the run's seeds gives other "
                             f"volumes (phantom code changed since the run?); its organ maps would not belong to "
                             f"its images. Rerun bench_zero_shot.py instead.")
            shutil.copytree(again / LOCATIONS, dataset / LOCATIONS)


def check_work_matches_report(bench: bz.Bench, result: dict) -> None:
    """Stop unless the work folder's predictions score as the report says (the Malenia arm's class-agnostic Dice,
    the supervised arm's per-disease Dice): a section added to a report must come from that report's models."""
    C, pred = bench.dataset(bz.UNSEEN_ID), bench.work / "predictions"
    q = result["quality"]
    malenia = bz.class_agnostic_scores(C / "labelsTs", pred / "malenia", bz.lesion_labels(C))["lesion"]["dice"]
    supervised = bz.evaluate(C / "labelsTs", pred / "supervised", C)["per_disease"]
    expected = result["evaluations"]["supervised"]["per_disease"]
    same = np.isclose(malenia, q["class_agnostic_lesion"]["malenia"]["dice"], rtol=0, atol=1e-9) and all(
        np.isclose(supervised[d]["dice"], v["dice"], rtol=0, atol=1e-9, equal_nan=True)
        for d, v in expected.items() if v["dice"] is not None)
    if not same:
        sys.exit(f"{bench.work}: its predictions do not score as {result['work']}'s report says (Malenia "
                 f"class-agnostic Dice {malenia:.4f} against {q['class_agnostic_lesion']['malenia']['dice']:.4f}); "
                 f"the section would describe other models. Rerun bench_zero_shot.py instead.")


def run(work: Path, out: Path) -> dict:
    started = time.time()
    result = json.loads((out / "benchmark.json").read_text())
    if Path(result["work"]).resolve() != work.resolve():
        sys.exit(f"{out / 'benchmark.json'} is the report of the run in {result['work']}, not of {work}")
    profile = bz.PROFILES[result["profile"]]
    bench = bz.Bench(work, profile, folder_suffix="_located")
    bench.timed("check the work folder against the report", check_work_matches_report, bench, result)
    bench.timed("organ maps of A's and C's test sets", add_location_maps, bench)
    bz.predict_generalised(bench, "malenia_located", bz.location_options(bench), bz.predict_args(profile))
    located = bench.timed("evaluate location maps", bz.score_generalised, bench, "malenia_located",
                          location_maps=LOCATIONS, seen_penalty=profile.located_seen_penalty)

    from zero_shot_report import _clean, generalised_quality, write_report

    q = result["quality"]
    q["located"] = _clean(generalised_quality(located, q["unseen_mean"]["diseases"], list(q["seen_per_disease"])))
    result["profile_settings"]["located_seen_penalty"] = profile.located_seen_penalty
    result["wall_times_s"].update(bench.times)
    result["notes"] = list(result.get("notes", [])) + [
        f"- The section \"Generalised zero-shot with location maps\" was added afterwards to this run's work folder "
        f"by `benchmarks/bench_location_maps.py` (same models and test sets, no retraining; "
        f"{(time.time() - started) / 60:.1f} min); its steps are in the wall-time table."]
    write_report(result, out)
    print(f"\nrewrote {out / 'benchmark.md'} and {out / 'benchmark.json'} with the location-map section")
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = bz.later_run_parser(__doc__).parse_args(argv)
    run(args.work.resolve(), args.out.resolve())


if __name__ == "__main__":
    main()
