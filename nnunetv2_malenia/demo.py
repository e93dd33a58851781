"""``nnUNetv2_malenia_demo``: the whole pipeline on synthetic phantoms, through the same commands a user runs.

    seen-split phantoms (train + held-out seen test)    nnUNetv2_malenia_phantoms
    unseen-split phantoms (zero-shot test)              nnUNetv2_malenia_phantoms
    text bank                                           nnUNetv2_malenia_build_bank
    plan + preprocess                                   nnUNetv2_plan_and_preprocess
    CPU regime's plans (3d_cpu, CT window)              nnUNetv2_malenia_cpu_plans, then nnUNetv2_preprocess
    train Malenia                                       nnUNetv2_train ... -tr nnUNetTrainerMalenia_*
    zero-shot prediction + lesion reports               nnUNetv2_malenia_predict
    per-disease Dice / NSD, attribute matching          nnUNetv2_malenia_evaluate
    the same, candidates = the test set's diseases      nnUNetv2_malenia_predict --diseases + evaluate
    the same on the held-out seen test set              nnUNetv2_malenia_predict + nnUNetv2_malenia_evaluate
    naming the true unseen lesions (masks given)        nnUNetv2_malenia_predict --describe-masks + evaluate
    generalised zero-shot, calibrated (cpu profile)     the above with --seen-penalty G on both test sets
    generalised zero-shot, location from organ maps     the above with --location-maps (the phantoms' locationsTs)

Profiles: ``cpu`` (default; the CPU regime of README: 2,000 iterations on 48^3 phantoms, 19-27 minutes on 2 cores
with native bf16 as measured on two hosts, longer in fp32; unseen lesions are found but named after seen diseases) and
``gpu`` (larger volumes, 250 epochs, one GPU).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_malenia.trainer_path import SHIM_FOLDER
from nnunetv2_malenia.training.cpu_plans import CPU_CT_WINDOW

SEEN_ID, UNSEEN_ID = 901, 902
# nnUNetv2_malenia_predict --seen-penalty of the CPU regime's generalised zero-shot rows (demo and quick benchmark):
# it maximised the harmonic mean of seen and unseen Dice on dev phantoms of other seeds than any test set
# (README, CPU regime table, "generalised zero-shot naming").
CPU_SEEN_PENALTY = 1.25
# The same with each lesion's location read from organ maps (--location-maps): with the organ given, the seen
# disease of that organ still wins the lesion (its tokens describe it), and G = 1 maximised the harmonic mean of the
# unseen and seen reference lesions named right on those dev phantoms (benchmarks/bench_naming.py --location-maps,
# G = 0..4: README, CPU regime table).
CPU_LOCATED_SEEN_PENALTY = 1.0


@dataclass(frozen=True)
class Profile:
    train_cases: int
    seen_test_cases: int
    unseen_test_cases: int
    size: int
    spacing: float
    trainer: str
    device: str
    fold: str = "0"
    min_lesion_radius: float = 1.5          # voxels (nnUNetv2_malenia_phantoms --min-lesion-radius)
    lesions_per_case: Tuple[int, int] = (1, 3)   # nnUNetv2_malenia_phantoms --lesions-per-case
    configuration: str = "3d_fullres"       # 3d_cpu: nnUNetv2_malenia_cpu_plans adds it after planning
    seen_penalty: float = 0.0               # --seen-penalty of the generalised zero-shot rows (0: no such rows)
    located_seen_penalty: float = 0.0       # --seen-penalty of the rows with --location-maps


PROFILES: Dict[str, Profile] = {
    # The CPU regime (README): 80 training cases of 2-4 lesions of radius >= 3 voxels, the halved-width 3d_cpu
    # configuration, 2,000 iterations of AdamW 1e-3.
    "cpu": Profile(train_cases=80, seen_test_cases=12, unseen_test_cases=12, size=48, spacing=7.0,
                   trainer="nnUNetTrainerMalenia_CPUDemo", device="cpu", min_lesion_radius=3.0,
                   lesions_per_case=(2, 4), configuration="3d_cpu", seen_penalty=CPU_SEEN_PENALTY,
                   located_seen_penalty=CPU_LOCATED_SEEN_PENALTY),
    "gpu": Profile(train_cases=200, seen_test_cases=20, unseen_test_cases=60, size=96, spacing=3.5,
                   trainer="nnUNetTrainerMalenia_250epochs", device="cuda"),
}


class Step:
    """Runs one CLI step with its wall time; stops the demo with the tool's own output when it fails."""

    def __init__(self, env: dict, log_folder: Path, times: Optional[dict] = None):
        self.env, self.log_folder, self.times = env, log_folder, {} if times is None else times

    def __call__(self, title: str, *cmd: str) -> None:
        exe = Path(sys.executable).parent / cmd[0]
        argv = [str(exe) if exe.exists() else cmd[0], *cmd[1:]]
        print(f"\n=== {title}\n$ {' '.join(cmd)}", flush=True)
        start = time.time()
        log = self.log_folder / f"{len(self.times):02d}_{Path(cmd[0]).name}.log"
        # Tee: everything into the log; to the console every line except progress-bar redraws, so training shows
        # nnU-Net's own epoch lines as they come.
        with open(log, "w") as f, subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
            for line in proc.stdout:
                f.write(line)
                if "\r" not in line and "it/s]" not in line and "s/it]" not in line:
                    print("   " + line.rstrip(), flush=True)
        self.times[title] = time.time() - start
        print(f"--- {title}: {self.times[title]:.0f} s (log: {log})", flush=True)
        if proc.returncode != 0:
            print(f"\n{title} failed with exit code {proc.returncode}; full output in {log}", file=sys.stderr)
            sys.exit(proc.returncode)


def demo_env(work: Path) -> dict:
    return dict(os.environ, nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
                nnUNet_results=str(work / "nnUNet_results"), nnUNet_extTrainer=str(SHIM_FOLDER),
                # single-threaded augmentation and 2 workers: twice as fast as nnU-Net's defaults on 2 CPU cores
                nnUNet_n_proc_DA=os.environ.get("nnUNet_n_proc_DA", "0"),
                nnUNet_def_n_proc=os.environ.get("nnUNet_def_n_proc", "2"), MPLBACKEND="agg",
                # every arm starts from the same weights and patch sequence (training/seeding.py)
                MALENIA_SEED=os.environ.get("MALENIA_SEED", "0"))


def run_demo(work: Path, profile: Profile, fresh: bool) -> dict:
    if fresh and work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = demo_env(work)
    step = Step(env, work / "logs")
    raw = work / "nnUNet_raw"
    seen, unseen = raw / f"Dataset{SEEN_ID}_MaleniaSeen", work / f"Dataset{UNSEEN_ID}_MaleniaUnseen"
    geometry = ["--size", *[str(profile.size)] * 3, "--spacing", *[str(profile.spacing)] * 3,
                "--min-lesion-radius", str(profile.min_lesion_radius),
                "--lesions-per-case", *[str(n) for n in profile.lesions_per_case]]
    step("seen-split phantoms (training set + held-out seen test set)", "nnUNetv2_malenia_phantoms",
         "-d", str(SEEN_ID), "-o", str(raw), "--name", "MaleniaSeen", "--split", "seen", "--cases",
         str(profile.train_cases), "--test-cases", str(profile.seen_test_cases), *geometry, "--seed", "0",
         "--overwrite")
    # The unseen test set lives outside nnUNet_raw: it is never planned or trained on.
    step("unseen-split phantoms (zero-shot test set)", "nnUNetv2_malenia_phantoms", "-d", str(UNSEEN_ID), "-o",
         str(work), "--name", "MaleniaUnseen", "--split", "unseen", "--cases", "1", "--test-cases",
         str(profile.unseen_test_cases), *geometry, "--seed", "1", "--overwrite")
    step("text bank", "nnUNetv2_malenia_build_bank", str(SEEN_ID))
    # the planner hands nnUNet_n_proc_DA to torch.set_num_threads, which refuses the 0 that is best for training
    planner = Step({k: v for k, v in env.items() if k != "nnUNet_n_proc_DA"}, step.log_folder, step.times)
    cpu_regime = profile.configuration == "3d_cpu"
    planner("plan" if cpu_regime else "plan and preprocess", "nnUNetv2_plan_and_preprocess", "-d", str(SEEN_ID),
            "-c", "3d_fullres", "-npfp", "2", "-np", "2", "--verify_dataset_integrity",
            *(["--no_pp"] if cpu_regime else []))
    if cpu_regime:
        # the CPU regime's plans: halved widths, and the soft-tissue CT window for every configuration, so the
        # data are preprocessed after it
        step("CPU configuration (3d_cpu, CT window)", "nnUNetv2_malenia_cpu_plans", "-d", str(SEEN_ID),
             "--ct-window", *(f"{v:g}" for v in CPU_CT_WINDOW))
        planner("preprocess", "nnUNetv2_preprocess", "-d", str(SEEN_ID), "-c", "3d_fullres", "-np", "2")
    step("train Malenia", "nnUNetv2_train", str(SEEN_ID), profile.configuration, profile.fold, "-tr", profile.trainer,
         "-device", profile.device)
    model = work / "nnUNet_results" / seen.name / f"{profile.trainer}__nnUNetPlans__{profile.configuration}"
    unseen_scoring = dict(labels=unseen / "labelsTs", dataset_json=unseen / "dataset.json",
                          attributes=unseen / "malenia_attributes_test.json")
    seen_scoring = dict(labels=seen / "labelsTs", dataset_json=seen / "dataset.json")

    def predict_and_evaluate(title: str, images: Path, out: Path, evaluation: str, scoring: dict,
                             *options: str) -> None:
        """One ``nnUNetv2_malenia_predict`` run, then ``nnUNetv2_malenia_evaluate`` of it into work/evaluation."""
        step(title, "nnUNetv2_malenia_predict", "-i", str(images), "-o", str(out), "-m", str(model), "-f",
             profile.fold, "-device", profile.device, "-npp", "2", "-nps", "2", *options)
        reports = [] if "--no-reports" in options else ["--reports", str(out / "reports")]
        attributes = ["--attributes", str(scoring["attributes"])] if "attributes" in scoring else []
        step(f"evaluate ({title})", "nnUNetv2_malenia_evaluate", "-ref", str(scoring["labels"]), "-pred", str(out),
             "--ref-dataset-json", str(scoring["dataset_json"]), *reports, *attributes, "-o", str(work / evaluation))

    pred = work / "zero_shot_predictions"
    predict_and_evaluate("zero-shot prediction on the unseen test set", unseen / "imagesTs", pred, "evaluation.json",
                         unseen_scoring, "--overlay")
    # Conventional zero-shot: the test set's label space is given (--diseases), so a lesion can only be named one
    # of the unseen diseases; above, every knowledge-table disease (seen ones included) is a candidate.
    test_diseases = [n for n, v in json.loads((unseen / "dataset.json").read_text())["labels"].items() if v != 0]
    restricted = work / "zero_shot_test_diseases"
    predict_and_evaluate("zero-shot, candidates = the test set's diseases", unseen / "imagesTs", restricted,
                         "evaluation_test_diseases.json", unseen_scoring, "--diseases", *test_diseases)
    # The held-out SEEN test set tells "not learned yet" (seen lesions missed too) from "learned, does not
    # transfer" (seen found, unseen missed). Same model and class set; label maps only.
    predict_and_evaluate("prediction on the held-out seen test set", seen / "imagesTs",
                         work / "seen_test_predictions", "evaluation_seen.json", seen_scoring, "--no-reports")
    if profile.seen_penalty:
        # Generalised zero-shot (every disease a candidate) with calibrated stacking: the trained diseases' logits
        # lowered by G. Both test sets at the same G, since the penalty buys unseen naming with seen naming.
        g = f"{profile.seen_penalty:g}"
        predict_and_evaluate(f"zero-shot prediction, --seen-penalty {g}", unseen / "imagesTs",
                             work / "zero_shot_calibrated", "evaluation_calibrated.json", unseen_scoring,
                             "--seen-penalty", g)
        predict_and_evaluate(f"held-out seen test set, --seen-penalty {g}", seen / "imagesTs",
                             work / "seen_test_calibrated", "evaluation_seen_calibrated.json", seen_scoring,
                             "--seen-penalty", g, "--no-reports")
    # Generalised zero-shot with each lesion's location read from an organ map of its scan (the phantoms' own
    # locationsTs, what an organ segmenter would give) instead of from the tokens, at the profile's G for it.
    located = ["--seen-penalty", f"{profile.located_seen_penalty:g}"]
    predict_and_evaluate("zero-shot prediction, --location-maps", unseen / "imagesTs", work / "zero_shot_located",
                         "evaluation_located.json", unseen_scoring, "--location-maps", str(unseen / "locationsTs"),
                         *located)
    predict_and_evaluate("held-out seen test set, --location-maps", seen / "imagesTs", work / "seen_test_located",
                         "evaluation_seen_located.json", seen_scoring, "--location-maps", str(seen / "locationsTs"),
                         *located)
    # Naming apart from finding: the model describes the TRUE unseen lesions (reference masks given), scored with
    # the same attribute matching (Table 8) and disease identification.
    def describe_and_evaluate(title: str, out: Path, evaluation: str, *options: str) -> None:
        step(title, "nnUNetv2_malenia_predict", "-i", str(unseen / "imagesTs"), "-o", str(out), "-m", str(model),
             "-f", profile.fold, "-device", profile.device, "--describe-masks", str(unseen / "labelsTs"), *options)
        step(f"evaluate ({title})", "nnUNetv2_malenia_evaluate", "-ref", str(unseen / "labelsTs"), "-pred",
             str(unseen / "labelsTs"), "-djfile", str(unseen / "dataset.json"), "--reports", str(out / "reports"),
             "--attributes", str(unseen_scoring["attributes"]), "-o", str(work / evaluation))

    described = work / "reference_lesion_reports"
    describe_and_evaluate("describe the reference lesions of the unseen test set", described,
                          "evaluation_naming.json")
    if profile.seen_penalty:
        describe_and_evaluate(f"describe the reference lesions, --seen-penalty {g}",
                              work / "reference_lesion_reports_calibrated", "evaluation_naming_calibrated.json",
                              "--seen-penalty", g)
    describe_and_evaluate("describe the reference lesions, --location-maps", work / "reference_lesion_reports_located",
                          "evaluation_naming_located.json", "--location-maps", str(unseen / "locationsTs"), *located)
    calibrated = [work / "zero_shot_calibrated"] if profile.seen_penalty else []
    shown = lesion_to_show([work / "zero_shot_located", *calibrated, restricted, pred], described,
                           unseen / "labelsTs", unseen / "dataset.json")
    print_summary(work, shown, step.times, profile.seen_penalty, profile.located_seen_penalty)
    return step.times


def reference_disease_under(component, reference: np.ndarray, names: Dict[int, str]) -> Optional[str]:
    """The reference disease covering most of a predicted lesion's voxels (None: it lies on background only)."""
    under = reference[component.slices][component.mask]
    under = under[under != 0]
    return names[int(np.bincount(under).argmax())] if under.size else None


def lesion_to_show(prediction_folders: Sequence[Path], described: Path, reference_folder: Path,
                   reference_dataset_json: Path) -> Optional[Tuple[Path, dict, str]]:
    """The lesion report the demo prints, as (report file, report with that lesion only, what it is): the first
    predicted lesion named as the reference lesion under it (prediction folders in order), else the first predicted
    lesion, else the first reference lesion the model described."""
    import SimpleITK as sitk

    from nnunetv2_malenia.evaluation.lesions import lesion_components

    dataset = json.loads(reference_dataset_json.read_text())
    names = {int(v): n for n, v in dataset["labels"].items() if int(v) != 0}
    ending = dataset.get("file_ending", ".nii.gz")
    first_predicted = None
    for folder in prediction_folders:
        for path in sorted((folder / "reports").glob("*.json")):
            report = json.loads(path.read_text())
            if not report["lesions"]:
                continue
            first_predicted = first_predicted or (path, dict(report, lesions=report["lesions"][:1]),
                                                  "a predicted lesion")
            components = lesion_components(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{path.stem}{ending}"))))
            reference = sitk.GetArrayFromImage(sitk.ReadImage(str(reference_folder / f"{path.stem}{ending}")))
            for lesion in report["lesions"]:
                if reference_disease_under(components[lesion["id"]], reference, names) == lesion["disease"]:
                    return path, dict(report, lesions=[lesion]), "a predicted lesion, named as its reference lesion"
    if first_predicted:
        return first_predicted
    for path in sorted((described / "reports").glob("*.json")):
        report = json.loads(path.read_text())
        if report["lesions"]:
            return path, dict(report, lesions=report["lesions"][:1]), \
                "no lesion was predicted; a reference lesion, described by the model"
    return None


def summary_sections(seen_penalty: float, located_seen_penalty: float = 0.0) -> List[Tuple[str, str, str]]:
    """(evaluation file, table kind, caption) of every result table the demo prints and writes, in order."""
    g = f"`--seen-penalty {seen_penalty:g}`"
    calibrated = [
        ("evaluation_calibrated.json", "dice",
         f"Generalised zero-shot with calibrated stacking ({g}: the trained diseases' logits lowered by "
         f"{seen_penalty:g} when a lesion is named; every disease a candidate):"),
        ("evaluation_seen_calibrated.json", "dice", f"The held-out seen test set at the same {g} (what it costs):"),
        ("evaluation_naming_calibrated.json", "naming", f"Naming the true unseen lesions at {g}:"),
    ] if seen_penalty else []
    at = f" and `--seen-penalty {located_seen_penalty:g}`" if located_seen_penalty else ""
    located = [
        ("evaluation_located.json", "dice",
         "Generalised zero-shot with each lesion's location read from an organ map of its scan "
         f"(`--location-maps`: the phantoms' locationsTs; every disease a candidate{at}):"),
        ("evaluation_seen_located.json", "dice", f"The held-out seen test set with `--location-maps`{at}:"),
        ("evaluation_naming_located.json", "naming", f"Naming the true unseen lesions with `--location-maps`{at}:"),
    ]
    return [("evaluation.json", "dice",
             "Zero-shot on unseen-split phantoms (lesion types never labelled in training):"),
            ("evaluation_test_diseases.json", "dice",
             "The same prediction with the candidates restricted to the test set's diseases "
             "(`nnUNetv2_malenia_predict --diseases`: the label space is given, as in conventional zero-shot "
             "segmentation; above, every knowledge-table disease, the seen ones included, is a candidate):"),
            ("evaluation_seen.json", "dice",
             "The same model on the held-out test set of the training (seen) lesion types:"),
            ("evaluation_naming.json", "naming",
             "Naming the true unseen lesions (reference masks given to `nnUNetv2_malenia_predict --describe-masks`):"),
            *calibrated, *located]


def print_summary(work: Path, shown: Optional[Tuple[Path, dict, str]], times: dict, seen_penalty: float,
                  located_seen_penalty: float = 0.0) -> None:
    from nnunetv2_malenia.evaluation.evaluate import format_report_table, format_table

    formatters = {"dice": format_table, "naming": format_report_table}
    tables = [(caption, formatters[kind](json.loads((work / name).read_text())))
              for name, kind, caption in summary_sections(seen_penalty, located_seen_penalty)]
    for caption, table in tables:
        print(f"\n=== {caption}\n{table}")
    if shown is not None:
        path, report, what = shown
        print(f"\n=== one lesion report ({what}: {path})")
        print(json.dumps(report, indent=2))
    print("\nwall time per step: " + ", ".join(f"{k}: {v:.0f} s" for k, v in times.items()))
    print(f"total: {sum(times.values()) / 60:.1f} min; everything is under {work}")
    write_results_markdown(work / "results.md", tables, times)
    print(f"results summary (for README's Results section): {work / 'results.md'}")


def machine_description() -> str:
    import platform
    from importlib.metadata import version

    import torch

    from nnunetv2_malenia.training.cpu_bf16 import cpu_training_precision

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}, CPU training in {cpu_training_precision()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, nnunetv2 {version('nnunetv2')}")


def write_results_markdown(path: Path, tables: Sequence[Tuple[str, str]], times: dict) -> None:
    """``tables``: (caption, table text) in order, as ``print_summary`` prints them."""
    from nnunetv2_malenia.utils.atomic_io import write_text_atomic

    lines = [f"Generated by `nnUNetv2_malenia_demo` on {time.strftime('%Y-%m-%d')}: {machine_description()}.", ""]
    for caption, table in tables:
        lines += [caption, "", "```", table, "```", ""]
    lines += ["| step | wall time |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} s |" for k, v in times.items()]
    lines += [f"| total | {sum(times.values()) / 60:.1f} min |"]
    write_text_atomic("\n".join(lines) + "\n", path)


def main(argv: Optional[Sequence[str]] = None) -> None:
    from nnunetv2_malenia.utils.cli import make_parser     # --version and help as every console script

    p = make_parser("nnUNetv2_malenia_demo", __doc__)
    p.add_argument("--work", default="malenia_demo", help="folder for all demo data (default ./malenia_demo)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--keep", action="store_true", help="reuse an existing work folder instead of starting fresh")
    args = p.parse_args(argv)
    run_demo(Path(args.work).resolve(), PROFILES[args.profile], fresh=not args.keep)


if __name__ == "__main__":
    main()
