"""Benchmark (not a test): Malenia zero-shot vs plain nnU-Net on the same phantom data, quality and cost, one run.

    python benchmarks/bench_zero_shot.py --profile quick --work /tmp/zs_work --out zs_report

Data (nnunetv2_malenia.phantoms):
    A  Dataset911  seen-split training set + held-out seen test set (imagesTs/labelsTs)
    B  Dataset912  A with every lesion label merged into one label "lesion" (same images and geometry)
    C  Dataset913  unseen-split training set + unseen test set: C's test set is THE zero-shot test set of every arm
Arms (same planner, same schedule per profile, same fold, same test-time settings):
    1  Malenia on A, zero-shot predicted on C's test set (nnUNetv2_malenia_predict, with lesion reports)
    2  nnUNetTrainer on B (class-agnostic), predicted on C's test set (nnUNetv2_predict)
    3  nnUNetTrainer supervised on C (upper bound)
    4  Malenia ablations on A (full profile)
    5  nnUNetTrainer per-class on A (quick/full): the seen-lesion reference for Malenia on A's test set
The model of arm 1 also predicts with --seen-penalty G where the profile sets one (quick, smoke): every disease a
candidate, the trained ones' logits lowered by G, on C's and A's test sets (generalised zero-shot); and, where the
profile asks for it (quick, smoke), with every disease a candidate and each lesion's location read from the test
sets' organ maps (--location-maps: the phantoms' locationsTs, what an organ segmentation of the scan gives).

Arm 2 names no disease, so it is scored two ways: class-agnostic (every reference lesion label merged into one
mask vs every predicted lesion voxel), and per unseen disease with an ORACLE NAMING rule: the prediction of
disease d is the union of the predicted connected components (full connectivity) that overlap d's reference mask
by at least one voxel; Dice/NSD of that against d's reference. The oracle borrows the reference's names, so it is
an optimistic bound for a class-agnostic model, not something it could do at test time.

Every number in the report comes from this run; the report is REPORT_DIR/benchmark.md (+ PNG plots) and
REPORT_DIR/benchmark.json. Cost: epoch times from the training logs (same schedule, so their ratio is the
train-step ratio, augmentation and validation iterations included), wall time of the predict calls on the same
cases (CLI imports included; Malenia's lesion reports timed apart), peak RSS of each child process
(os.wait4), parameters and FLOPs of one training forward at the 96^3 reference plan (bench_network); on a GPU
(full profile) also fwd+bwd+step time and torch.cuda.max_memory_allocated measured in-process at the run's plan.

Trainers are found through the plugin's shim folder plus any folders already in $nnUNet_extTrainer (own
schedules). Peak memory comes from benchmarks/child_rss.py wrapping each train/predict call.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_malenia.demo import CPU_LOCATED_SEEN_PENALTY, CPU_SEEN_PENALTY, Step, demo_env

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))           # bench_network / zero_shot_report live beside this file

SEEN_ID, MERGED_ID, UNSEEN_ID = 911, 912, 913
NAMES = {SEEN_ID: "ZSBenchSeen", MERGED_ID: "ZSBenchSeenMerged", UNSEEN_ID: "ZSBenchUnseen"}
SEEDS = {"phantoms_seen": 0, "phantoms_unseen": 1}


def run_seeds(env: dict) -> dict:
    """The phantom seeds and the training seed the nnU-Net children ran with (MALENIA_SEED, None when unset)."""
    seed = env.get("MALENIA_SEED", "").strip()
    return dict(SEEDS, training=int(seed) if seed else None)
# the paper's Tables 3-4, then this implementation's own additions switched off (issue #12 B, losses/criterion.py)
ABLATIONS = ("SingleScaleAlignment", "SinglePositive", "NoFusion", "MaskBranchOnly", "TextBranchOnly",
             "UnusedRowsAsNegatives", "NoOtherLesionLoss", "NoLesionLoss", "NoMaskPooling", "NoMaskResidual")
NSD_TOLERANCE_MM = 2.0
MARKER = ".zero_shot_bench"


@dataclass(frozen=True)
class Profile:
    train_cases: int
    seen_test_cases: int
    unseen_train_cases: int
    unseen_test_cases: int
    size: int
    spacing: float
    malenia_trainer: str
    baseline_trainer: str
    device: str
    fold: str = "0"
    tta: bool = False                  # mirroring at test time, the same for every arm
    verify: bool = True                # nnU-Net's dataset integrity check while planning (B is written by us)
    # worker processes of planning, prediction and nnU-Net's validation export: each spawned worker re-imports
    # torch and nnU-Net (10 s and more on a busy 2-core host), which a handful of tiny cases never pays back
    workers: int = 2
    per_class_arm: bool = True         # arm 5 (plain nnUNetTrainer on A) and the seen-lesion comparison
    ablations: Tuple[str, ...] = ()
    description: str = ""
    min_lesion_radius: float = 1.5     # voxels (nnUNetv2_malenia_phantoms --min-lesion-radius)
    lesions_per_case: Tuple[int, int] = (1, 3)   # nnUNetv2_malenia_phantoms --lesions-per-case
    configuration: str = "3d_fullres"  # 3d_cpu: the CPU regime's halved-width plan (nnUNetv2_malenia_cpu_plans)
    # > 0: the Malenia arm also predicts both test sets with every disease a candidate and --seen-penalty G
    # (generalised zero-shot, calibrated stacking); G is chosen on dev phantoms, never on these test sets
    seen_penalty: float = 0.0
    # not None: the Malenia arm also predicts both test sets with every disease a candidate, each lesion's location
    # read from the phantoms' organ maps (--location-maps locationsTs) and this --seen-penalty (chosen on dev phantoms)
    located_seen_penalty: Optional[float] = None


PROFILES: Dict[str, Profile] = {
    # 5 training cases: nnU-Net's 5-fold split needs at least five for fold 0. Two epochs of two iterations: the
    # 5x4 schedule alone took 3.5 min for the Malenia arm on a busy 2-core host, over the test's 6-minute budget.
    "smoke": Profile(train_cases=5, seen_test_cases=1, unseen_train_cases=5, unseen_test_cases=2, size=32,
                     spacing=10.5, malenia_trainer="nnUNetTrainerMalenia_2epochs_2iters",
                     baseline_trainer="nnUNetTrainer_2epochs_2iters", device="cpu", per_class_arm=False,
                     verify=False, workers=1, min_lesion_radius=3.0, configuration="3d_cpu",
                     seen_penalty=CPU_SEEN_PENALTY, located_seen_penalty=CPU_LOCATED_SEEN_PENALTY,
                     description="pipeline check only (minutes on 2 CPU cores); the numbers mean nothing"),
    # The CPU regime (README): the demo's phantoms (48^3 at 7 mm, lesion radius >= 3 voxels), the 3d_cpu plan and
    # 2,000 iterations of AdamW 1e-3 for every arm (bf16 where the CPU has it natively, training/cpu_bf16.py).
    # 36 test cases per split (about 18 lesions per disease): with 12, a disease's mean rested on one to five
    # lesions (one pancreas tumour in the seen test set), so one misnamed lesion moved a 6-disease mean by up to 0.15.
    # Phantom cases are seeded per index, so the training cases are the same as with 12.
    "quick": Profile(train_cases=80, seen_test_cases=36, unseen_train_cases=80, unseen_test_cases=36, size=48,
                     spacing=7.0, malenia_trainer="nnUNetTrainerMalenia_CPUDemo",
                     baseline_trainer="nnUNetTrainer_CPUDemo", device="cpu", min_lesion_radius=3.0,
                     lesions_per_case=(2, 4), configuration="3d_cpu", seen_penalty=CPU_SEEN_PENALTY,
                     located_seen_penalty=CPU_LOCATED_SEEN_PENALTY,
                     description="the CPU regime for every arm (about 70 min on 2 cores with native bf16)"),
    "full": Profile(train_cases=200, seen_test_cases=20, unseen_train_cases=200, unseen_test_cases=60, size=96,
                    spacing=3.5, malenia_trainer="nnUNetTrainerMalenia_250epochs", located_seen_penalty=0.0,
                    baseline_trainer="nnUNetTrainer_250epochs", device="cuda", tta=True,
                    ablations=tuple(f"nnUNetTrainerMalenia_{a}_250epochs" for a in ABLATIONS),
                    description="one GPU, 96^3 volumes, 250-epoch schedule, with the Tables 3-4 ablations"),
}


@dataclass
class Bench:
    work: Path
    profile: Profile
    times: Dict[str, float] = field(default_factory=dict)
    rss: Dict[str, dict] = field(default_factory=dict)
    # a later script on the same work folder (bench_ablations.py) logs beside this run's logs, not over them
    folder_suffix: str = ""
    # nnUNet_results under the work folder: a later script that retrains an arm under its own trainer name
    # (bench_seeds.py, another MALENIA_SEED) keeps the quick run's models by training into a folder of its own
    results_folder: str = "nnUNet_results"

    def __post_init__(self):
        self.env = demo_env(self.work)
        self.env["nnUNet_results"] = str(self.work / self.results_folder)
        # trainer folders the user already names (own schedules) stay visible beside the plugin's shims
        if os.environ.get("nnUNet_extTrainer"):
            self.env["nnUNet_extTrainer"] += os.pathsep + os.environ["nnUNet_extTrainer"]
        self.env["nnUNet_def_n_proc"] = str(self.profile.workers)
        for folder in ("logs", "rss"):
            (self.work / f"{folder}{self.folder_suffix}").mkdir(parents=True, exist_ok=True)
        self.step = Step(self.env, self.work / f"logs{self.folder_suffix}", self.times)
        self.raw = self.work / "nnUNet_raw"

    def dataset(self, dataset_id: int) -> Path:
        return self.raw / f"Dataset{dataset_id}_{NAMES[dataset_id]}"

    def model(self, dataset_id: int, trainer: str) -> Path:
        return (self.work / self.results_folder / self.dataset(dataset_id).name
                / f"{trainer}__nnUNetPlans__{self.profile.configuration}")

    def measured(self, title: str, *cmd: str) -> None:
        """A CLI step whose peak RSS is recorded (through child_rss.py) beside its wall time."""
        out = self.work / f"rss{self.folder_suffix}" / f"{len(self.rss):02d}.json"
        self.step(title, "python", str(BENCH_DIR / "child_rss.py"), str(out), "--", *cmd)
        self.rss[title] = json.loads(out.read_text())

    def timed(self, title: str, fn, *args, **kwargs):
        """An in-process step, timed into the same table as the CLI steps."""
        print(f"\n=== {title}", flush=True)
        start = time.time()
        result = fn(*args, **kwargs)
        self.times[title] = time.time() - start
        print(f"--- {title}: {self.times[title]:.0f} s", flush=True)
        return result


# -------------------------------------------------------------------------------------------------------------- data
def write_phantom_set(bench: Bench, dataset_id: int, split: str, cases: int, test_cases: int, seed: int,
                      prefix: str, target: Optional[Path] = None) -> None:
    """One phantom dataset of the profile's geometry: ``cases`` training and ``test_cases`` test cases of a split,
    into the dataset's raw folder (or ``target``)."""
    from nnunetv2_malenia.attributes import load_knowledge_table
    from nnunetv2_malenia.phantoms.dataset import split_diseases, write_phantom_dataset
    from nnunetv2_malenia.phantoms.generator import PhantomConfig

    p, table = bench.profile, load_knowledge_table()
    labelled, _ = split_diseases(table, split, False)
    config = PhantomConfig(size=(p.size,) * 3, spacing=(p.spacing,) * 3, labelled=labelled, seed=seed,
                           min_lesion_radius=p.min_lesion_radius, lesions_per_case=p.lesions_per_case)
    write_phantom_dataset(target or bench.dataset(dataset_id), table, config, cases, test_cases,
                          num_processes=p.workers, case_prefix=prefix, dataset_name=bench.dataset(dataset_id).name)


def write_phantoms(bench: Bench) -> None:
    write_seen_phantoms(bench)
    write_unseen_phantoms(bench)


def write_seen_phantoms(bench: Bench, target: Optional[Path] = None) -> None:
    """A: the seen split's training set (Malenia, per-class nnU-Net) and held-out seen test set."""
    p = bench.profile
    write_phantom_set(bench, SEEN_ID, "seen", p.train_cases, p.seen_test_cases, SEEDS["phantoms_seen"], "seen",
                      target=target)


def write_unseen_phantoms(bench: Bench, target: Optional[Path] = None) -> None:
    """C: the unseen split's training set (supervised arm) and test set (every arm's zero-shot test)."""
    p = bench.profile
    write_phantom_set(bench, UNSEEN_ID, "unseen", p.unseen_train_cases, p.unseen_test_cases,
                      SEEDS["phantoms_unseen"], "unseen", target=target)


def write_merged_dataset(seen: Path, merged: Path) -> None:
    """Dataset B: A's training images and labels with every lesion label set to 1 ("lesion"), same geometry."""
    import SimpleITK as sitk

    (merged / "labelsTr").mkdir(parents=True, exist_ok=True)
    shutil.copytree(seen / "imagesTr", merged / "imagesTr", dirs_exist_ok=True)
    for file in sorted((seen / "labelsTr").glob("*.nii.gz")):
        image = sitk.ReadImage(str(file))
        out = sitk.GetImageFromArray((sitk.GetArrayFromImage(image) > 0).astype(np.uint8))
        out.CopyInformation(image)
        sitk.WriteImage(out, str(merged / "labelsTr" / file.name), True)
    dataset_json = json.loads((seen / "dataset.json").read_text())
    dataset_json.update(labels={"background": 0, "lesion": 1}, name=merged.name,
                        description=f"{seen.name} with all lesion labels merged into one (class-agnostic baseline)")
    (merged / "dataset.json").write_text(json.dumps(dataset_json, indent=2))


# -------------------------------------------------------------------------------------------------------- scoring
def _read(path: Path):
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), list(image.GetSpacing())[::-1]      # array order (z, y, x)


def class_agnostic_scores(reference_dir: Path, prediction_dir: Path, reference_labels: Dict[str, int]) -> dict:
    """Lesion vs background: all reference lesion labels merged, all predicted labels merged (any value > 0).
    Also the oracle-named per-disease scores (see the module docstring). Means over cases, NaN cases left out
    (both empty), as nnUNetv2_malenia_evaluate does."""
    from scipy import ndimage

    from nnunetv2_malenia.evaluation.metrics import dice, nanmean, surface_dice

    merged: List[Tuple[float, float]] = []
    per_disease: Dict[str, List[Tuple[float, float]]] = {n: [] for n in reference_labels}
    present = {n: 0 for n in reference_labels}          # test cases whose reference has the disease
    for ref_file in sorted(reference_dir.glob("*.nii.gz")):
        ref, spacing = _read(ref_file)
        pred, _ = _read(prediction_dir / ref_file.name)
        lesion = pred > 0
        merged.append((dice(ref > 0, lesion), surface_dice(ref > 0, lesion, spacing, NSD_TOLERANCE_MM)))
        components, _ = ndimage.label(lesion, structure=np.ones((3,) * lesion.ndim))
        for name, value in reference_labels.items():
            target = ref == value
            present[name] += bool(target.any())
            hit = np.unique(components[target & lesion])
            named = np.isin(components, hit[hit > 0])
            per_disease[name].append((dice(target, named), surface_dice(target, named, spacing, NSD_TOLERANCE_MM)))
    summarise = lambda rows: {"dice": nanmean(r[0] for r in rows), "nsd": nanmean(r[1] for r in rows),
                              "n_cases": len(rows), "n_cases_scored": int(sum(np.isfinite(r[0]) for r in rows))}
    return {"lesion": summarise(merged), "oracle_named": {n: summarise(rows) for n, rows in per_disease.items()},
            "reference_cases_with": present}


def lesion_labels(dataset: Path) -> Dict[str, int]:
    labels = json.loads((dataset / "dataset.json").read_text())["labels"]
    return {n: v for n, v in labels.items() if v != 0}


def evaluate(reference: Path, prediction: Path, dataset: Path, reports: bool = False) -> dict:
    from nnunetv2_malenia.evaluation.evaluate import evaluate_folders

    extra = dict(attributes_file=dataset / "malenia_attributes_test.json", reports_dir=prediction / "reports") \
        if reports else {}
    result = evaluate_folders(reference, prediction, reference_dataset_json=dataset / "dataset.json",
                              nsd_tolerance_mm=NSD_TOLERANCE_MM, num_processes=1, progress=False, **extra)
    result.pop("per_case")                       # the report keeps per-disease means; per-case rows are in work/
    return result


def evaluate_naming(dataset: Path, reports: Path) -> dict:
    """Attribute matching and disease identification of reports on the reference lesions themselves (the label maps
    are their own prediction, so every lesion is matched): how well the model names lesions it is shown."""
    from nnunetv2_malenia.evaluation.evaluate import evaluate_folders

    labels = dataset / "labelsTs"
    return evaluate_folders(labels, labels, reference_dataset_json=dataset / "dataset.json",
                            prediction_dataset_json=dataset / "dataset.json",
                            attributes_file=dataset / "malenia_attributes_test.json", reports_dir=reports,
                            nsd_tolerance_mm=NSD_TOLERANCE_MM, num_processes=1, progress=False)["lesion_reports"]


# ----------------------------------------------------------------------------------------------------------- cost
CURVE_KEYS = ("mean_fg_dice", "ema_fg_dice", "train_losses", "val_losses")


def iterations_per_epoch(trainer: str) -> int:
    """From the trainer class's schedule (the plugin's variants and baselines); nnU-Net's own trainers: 250."""
    from nnunetv2_malenia.nnunet_shims import malenia_trainers

    trainer_class = getattr(malenia_trainers, trainer, None)
    return getattr(trainer_class, "schedule", {}).get("num_iterations_per_epoch", 250)


def training_log(model: Path, fold: str) -> dict:
    """From nnU-Net's checkpoint log: per-epoch wall times (the first epoch, warm-up, left out of the median) and
    the learning curves per epoch: validation pseudo-Dice (mean over labels and nnU-Net's EMA), train/val loss and
    Malenia's named losses, with the iteration count at each epoch's end."""
    import torch

    from nnunetv2_malenia.training.progress_logger import NAMED_LOSS_PREFIX

    checkpoint = torch.load(model / f"fold_{fold}" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    log = checkpoint["logging"]
    durations = [e - s for s, e in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"])]
    steady = durations[1:] or durations
    curves = {k: [float(v) for v in log[k]] for k in CURVE_KEYS if k in log}
    curves.update({k: [float(v) for v in log[k]] for k in log if k.startswith(NAMED_LOSS_PREFIX)})
    return {"epochs": len(durations), "median_epoch_s": statistics.median(steady), "epoch_s": durations,
            "curves": curves, "iterations_per_epoch": iterations_per_epoch(model.name.split("__")[0])}


def gpu_step_cost(model: Path, configuration: str, reps: int = 5, device: str = "cuda") -> dict:
    """GPU: median fwd+bwd+step time and peak allocated memory of the plain and the Malenia network at the
    run's own plan (patch and batch size of ``model``'s plans.json), under autocast as nnU-Net trains. The child
    processes' RSS says nothing about GPU memory, so this is measured in-process with bench_network's networks
    (random text bank of bench_network.MALENIA's size). ``device="cpu"`` only checks the code path."""
    import torch

    import bench_network
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    pm = PlansManager(str(model / "plans.json"))
    cm = pm.get_configuration(configuration)
    x = torch.randn(cm.batch_size, 1, *cm.patch_size, device=device)
    out = {"patch_size": list(cm.patch_size), "batch_size": cm.batch_size, "reps": reps, "autocast": cuda}
    for name, build in (("plain", lambda: bench_network.plain_network(cm, bench_network.MALENIA["num_classes"])),
                        ("malenia", lambda: bench_network.malenia_network(pm, cm))):
        net = build().to(device).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99, nesterov=True)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for rep in range(reps + 1):                   # the first step warms up cuDNN and the allocator
            sync()
            start = time.perf_counter()
            with torch.autocast(device, enabled=cuda):
                bench_network.train_step(net, x)
            optimizer.step()
            sync()
            if rep:
                times.append(time.perf_counter() - start)
        out[name] = {"median_step_s": statistics.median(times),
                     "max_memory_allocated_mib": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None}
        del net, optimizer
    out["step_time_ratio"] = out["malenia"]["median_step_s"] / out["plain"]["median_step_s"]
    return out


def network_size_96() -> dict:
    """Parameters and FLOPs of one training forward, plain vs MaleniaNet, at bench_network's 96^3 reference plan."""
    import torch

    import bench_network
    from nnunetv2_malenia.network.example_plans import reference_plan_96

    torch.manual_seed(0)
    pm, cm = reference_plan_96()
    x = torch.randn(1, 1, *cm.patch_size)
    out = {"plan": "bench_network.reference_plan_96 (6 stages 32..320, PlainConvUNet, batch 1)",
           "patch_size": list(cm.patch_size), "malenia_settings": bench_network.MALENIA}
    for name, net in (("plain", bench_network.plain_network(cm, bench_network.MALENIA["num_classes"])),
                      ("malenia", bench_network.malenia_network(pm, cm))):
        net.train()
        out[name] = {"params": sum(p.numel() for p in net.parameters()), "flops": bench_network.count_flops(net, x)}
        del net
    return out


# ------------------------------------------------------------------------------------------------------- metadata
def hardware() -> dict:
    model = platform.processor() or platform.machine()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    from nnunetv2_malenia.training.cpu_bf16 import cpu_training_precision

    return {"cpu": model, "os_cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "cpu_training": cpu_training_precision(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), "python": platform.python_version()}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("torch", "nnunetv2", "nnunetv2_malenia", "dynamic-network-architectures", "monai", "numpy",
                    "SimpleITK"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


# ------------------------------------------------------------------------- steps shared with benchmarks/gpu_check.py
def fresh_work_folder(work: Path, owner: str) -> None:
    """Empty ``work`` for a new run; only ever delete a folder one of these scripts made (a mistyped --work must not
    wipe someone's data)."""
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).is_file():
            sys.exit(f"{work} is not empty and is no work folder of this benchmark (no {MARKER}); choose another")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text(f"work folder of {owner}; deleted on the next run\n")


def plan_and_preprocess(bench: Bench, title: str, dataset_ids: Sequence[int]) -> None:
    """nnU-Net's planner on the datasets; on the 3d_cpu configuration the CPU regime's plans (halved widths and its
    CT window, nnUNetv2_malenia_cpu_plans) are written between planning and preprocessing."""
    p = bench.profile
    cpu_regime = p.configuration == "3d_cpu"
    # the planner hands nnUNet_n_proc_DA to torch.set_num_threads, which refuses the 0 that is best for training
    step = Step({k: v for k, v in bench.env.items() if k != "nnUNet_n_proc_DA"}, bench.step.log_folder, bench.times)
    ids = [str(i) for i in dataset_ids]
    step(f"plan{'' if cpu_regime else ' and preprocess'} {title}", "nnUNetv2_plan_and_preprocess", "-d", *ids,
         "-c", "3d_fullres", "-npfp", str(p.workers), "-np", str(p.workers),
         *(["--verify_dataset_integrity"] if p.verify else []), *(["--no_pp"] if cpu_regime else []))
    if cpu_regime:
        from nnunetv2_malenia.training.cpu_plans import CPU_CT_WINDOW, add_cpu_configuration

        for dataset_id in dataset_ids:
            add_cpu_configuration(bench.work / "nnUNet_preprocessed" / bench.dataset(dataset_id).name
                                  / "nnUNetPlans.json", CPU_CT_WINDOW)
        step(f"preprocess {title}", "nnUNetv2_preprocess", "-d", *ids, "-c", "3d_fullres", "-np", str(p.workers))


def predict_args(p: Profile) -> List[str]:
    """The test-time settings every arm predicts with (fold, device, workers, mirroring)."""
    return ["-f", p.fold, "-device", p.device, "-npp", str(p.workers), "-nps", str(p.workers),
            *([] if p.tta else ["--disable_tta"])]


def later_run_header(bench: Bench, generated_by: str) -> dict:
    """What a later script on a finished run's work folder (ablations, budget) records about its own run."""
    cpu = hardware()
    return {"profile": next(name for name, p in PROFILES.items() if p == bench.profile), "generated_by": generated_by,
            "hardware": {"cpu": cpu.get("cpu"), "cores": f"{cpu.get('usable_cores')} usable cores"},
            "seed": bench.env.get("MALENIA_SEED")}


def later_run_parser(doc: str) -> argparse.ArgumentParser:
    """Command line of a later script on a finished quick run's work folder: --work and --out, its own options added."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="work folder of a finished quick-profile run")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def predict_zero_shot(bench: Bench, arm: str, trainer: str, common: Sequence[str]) -> None:
    """A Malenia model trained on A, on C's test set: label maps, then lesion reports, then the reference lesions
    described (``--describe-masks``), into work/predictions/ARM, ARM/reports and ARM_reference_lesions/reports."""
    p, C, pred = bench.profile, bench.dataset(UNSEEN_ID), bench.work / "predictions"
    zero_shot = ["nnUNetv2_malenia_predict", "-i", str(C / "imagesTs"), "-o", str(pred / arm), "-m",
                 str(bench.model(SEEN_ID, trainer)), *common]
    # Label maps first, timed like nnUNetv2_predict; the reports come from a second call that finds every
    # label map written (--continue_prediction) and only describes lesions. Their cost grows with the
    # number of predicted components (hundreds of fragments from an under-trained model), so it must not
    # be mistaken for sliding-window time.
    bench.measured(f"predict {arm} on C test", *zero_shot, "--no-reports")
    bench.measured(f"lesion reports {arm} on C test", *zero_shot, "--continue_prediction")
    # naming apart from finding: the model describes the true lesions of C's test set (masks given)
    bench.step(f"describe reference lesions {arm} on C test", "nnUNetv2_malenia_predict", "-i",
               str(C / "imagesTs"), "-o", str(pred / f"{arm}_reference_lesions"), "-m",
               str(bench.model(SEEN_ID, trainer)), "-f", p.fold, "-device", p.device,
               "--describe-masks", str(C / "labelsTs"))


def predict_generalised(bench: Bench, arm: str, extra: Callable[[Path], List[str]], common: Sequence[str]) -> None:
    """Generalised zero-shot: the Malenia arm's model with every knowledge-table disease a candidate and the options
    ``extra(test dataset folder)`` (a seen penalty, location maps), on C's test set (label maps and reports), on A's
    test set (what it costs, or gives, the seen diseases) and describing C's reference lesions, into
    work/predictions/ARM{,_seen,_reference_lesions}."""
    p, A, C, pred = bench.profile, bench.dataset(SEEN_ID), bench.dataset(UNSEEN_ID), bench.work / "predictions"
    predict = ["nnUNetv2_malenia_predict", "-m", str(bench.model(SEEN_ID, p.malenia_trainer))]
    bench.step(f"predict {arm} on C test", *predict, *extra(C), "-i", str(C / "imagesTs"), "-o", str(pred / arm),
               *common)
    # reports on A too where the options need them (location maps name lesions from their reports)
    seen_reports = [] if "--location-maps" in extra(A) else ["--no-reports"]
    bench.step(f"predict {arm} on A test", *predict, *extra(A), "-i", str(A / "imagesTs"), "-o",
               str(pred / f"{arm}_seen"), *seen_reports, *common)
    bench.step(f"describe reference lesions {arm} on C test", *predict, *extra(C), "-i", str(C / "imagesTs"), "-o",
               str(pred / f"{arm}_reference_lesions"), "-f", p.fold, "-device", p.device,
               "--describe-masks", str(C / "labelsTs"))


def calibrated_options(bench: Bench) -> Callable[[Path], List[str]]:
    """Calibrated stacking: the trained diseases' logits lowered by the profile's seen penalty."""
    return lambda dataset: ["--seen-penalty", f"{bench.profile.seen_penalty:g}"]


def location_options(bench: Bench) -> Callable[[Path], List[str]]:
    """Each lesion's location read from the test set's organ maps (the phantoms' locationsTs), at the profile's G."""
    return lambda dataset: ["--location-maps", str(dataset / "locationsTs"),
                            "--seen-penalty", f"{bench.profile.located_seen_penalty:g}"]


def score_generalised(bench: Bench, arm: str, **setting) -> dict:
    """The three predictions of ``predict_generalised`` scored as the uncalibrated ones are; ``setting`` (e.g.
    seen_penalty=1.25) is kept with the scores."""
    A, C, pred = bench.dataset(SEEN_ID), bench.dataset(UNSEEN_ID), bench.work / "predictions"
    return {**setting, "unseen": evaluate(C / "labelsTs", pred / arm, C, reports=True),
            "seen": evaluate(A / "labelsTs", pred / f"{arm}_seen", A),
            "naming": evaluate_naming(C, pred / f"{arm}_reference_lesions" / "reports")}


# ------------------------------------------------------------------------------------------------------------ run
def run(profile_name: str, work: Path, out: Path) -> dict:
    p = PROFILES[profile_name]
    started = time.time()
    fresh_work_folder(work, "benchmarks/bench_zero_shot.py")
    bench = Bench(work, p)
    A, B, C = (bench.dataset(i) for i in (SEEN_ID, MERGED_ID, UNSEEN_ID))
    bench.timed("phantoms A (seen) and C (unseen)", write_phantoms, bench)
    bench.timed("dataset B (A, lesion labels merged)", write_merged_dataset, A, B)
    bench.step("text bank of A", "nnUNetv2_malenia_build_bank", str(SEEN_ID))
    plan_and_preprocess(bench, "A, B, C", (SEEN_ID, MERGED_ID, UNSEEN_ID))

    arms = {"malenia": (SEEN_ID, p.malenia_trainer), "agnostic": (MERGED_ID, p.baseline_trainer),
            "supervised": (UNSEEN_ID, p.baseline_trainer)}
    if p.per_class_arm:
        arms["per_class"] = (SEEN_ID, p.baseline_trainer)
    for trainer in p.ablations:
        arms[trainer] = (SEEN_ID, trainer)
    for arm, (dataset_id, trainer) in arms.items():
        bench.measured(f"train {arm}", "nnUNetv2_train", str(dataset_id), p.configuration, p.fold, "-tr", trainer,
                       "-device", p.device)

    common = predict_args(p)
    pred = work / "predictions"
    for arm, (dataset_id, trainer) in arms.items():
        if arm in ("agnostic", "supervised"):
            bench.measured(f"predict {arm} on C test", "nnUNetv2_predict", "-i", str(C / "imagesTs"), "-o",
                           str(pred / arm), "-d", str(dataset_id), "-c", p.configuration, "-tr", trainer, *common)
        elif arm != "per_class":                  # Malenia and its ablations: zero-shot, then lesion reports
            predict_zero_shot(bench, arm, trainer, common)
    if p.per_class_arm:
        # Seen lesions: Malenia restricted to A's diseases, the per-class baseline knows exactly those
        bench.measured("predict malenia on A test", "nnUNetv2_malenia_predict", "-i", str(A / "imagesTs"), "-o",
                       str(pred / "malenia_seen"), "-m", str(bench.model(SEEN_ID, p.malenia_trainer)),
                       "--diseases", *lesion_labels(A), "--no-reports", *common)
        bench.measured("predict per_class on A test", "nnUNetv2_predict", "-i", str(A / "imagesTs"), "-o",
                       str(pred / "per_class_seen"), "-d", str(SEEN_ID), "-c", p.configuration, "-tr",
                       p.baseline_trainer, *common)
    if p.seen_penalty:
        predict_generalised(bench, "malenia_calibrated", calibrated_options(bench), common)
    if p.located_seen_penalty is not None:
        predict_generalised(bench, "malenia_located", location_options(bench), common)

    def score():
        # the class-agnostic arm names no disease (its one label "lesion" is no reference name, which evaluate
        # refuses): it is scored by class_agnostic_scores only
        ev = {arm: evaluate(C / "labelsTs", pred / arm, C, reports=arm == "malenia" or arm in p.ablations)
              for arm in arms if arm not in ("per_class", "agnostic")}
        ev["agnostic"] = None
        agnostic = {arm: class_agnostic_scores(C / "labelsTs", pred / arm, lesion_labels(C))
                    for arm in arms if arm != "per_class"}
        seen = {arm: evaluate(A / "labelsTs", pred / f"{arm}_seen", A) for arm in ("malenia", "per_class")} \
            if p.per_class_arm else {}
        naming = {arm: evaluate_naming(C, pred / f"{arm}_reference_lesions" / "reports")
                  for arm in arms if arm == "malenia" or arm in p.ablations}
        calibrated = score_generalised(bench, "malenia_calibrated", seen_penalty=p.seen_penalty) \
            if p.seen_penalty else None
        located = score_generalised(bench, "malenia_located", location_maps="locationsTs",
                                    seen_penalty=p.located_seen_penalty) \
            if p.located_seen_penalty is not None else None
        return ev, agnostic, seen, naming, calibrated, located

    evaluations, agnostic, seen, naming, calibrated, located = bench.timed("evaluate", score)
    # A disease defined only in a knowledge-table file at prediction time (bench_user_disease.py, issue #12 item 3):
    # its own report beside benchmark.md, same geometry as C, the Malenia arm's model.
    from bench_user_disease import main as user_disease

    bench.timed("new knowledge-table disease", user_disease,
                ["-m", str(bench.model(SEEN_ID, p.malenia_trainer)), "-f", p.fold, "--work", str(work / "user_disease"),
                 "--out", str(out), "--cases", str(p.unseen_test_cases), "--size", str(p.size), "--spacing",
                 str(p.spacing), "--min-lesion-radius", str(p.min_lesion_radius), "--lesions-per-case",
                 *[str(n) for n in p.lesions_per_case], "-device", p.device])
    size96 = bench.timed("params and FLOPs at 96^3", network_size_96)
    epochs = {arm: training_log(bench.model(d, t), p.fold) for arm, (d, t) in arms.items()}
    gpu = bench.timed("GPU train steps in-process", gpu_step_cost, bench.model(SEEN_ID, p.malenia_trainer),
                      p.configuration) \
        if p.device == "cuda" else None

    from zero_shot_report import assemble, write_report

    result = assemble(profile_name=profile_name, profile=asdict(p), arms=arms, names=NAMES, C_labels=lesion_labels(C),
                      A_labels=lesion_labels(A), evaluations=evaluations, agnostic=agnostic, seen=seen, naming=naming,
                      calibrated=calibrated, located=located,
                      epochs=epochs, gpu=gpu, rss=bench.rss, times=bench.times, size96=size96, hardware=hardware(),
                      versions=versions(), seeds=run_seeds(bench.env), nsd_tolerance_mm=NSD_TOLERANCE_MM,
                      total_s=time.time() - started, work=str(work))
    write_report(result, out)
    print(f"\nwrote {out / 'benchmark.md'} and {out / 'benchmark.json'} "
          f"({(time.time() - started) / 60:.1f} min in all)")
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()))
    parser.add_argument("--work", required=True, help="work folder (deleted and rewritten)")
    parser.add_argument("--out", required=True, help="report folder (benchmark.md, benchmark.json, *.png)")
    args = parser.parse_args(argv)
    run(args.profile, Path(args.work).resolve(), Path(args.out).resolve())


if __name__ == "__main__":
    main()
