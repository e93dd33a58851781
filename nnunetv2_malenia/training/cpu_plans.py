"""``nnUNetv2_malenia_cpu_plans``: add the CPU regime's ``3d_cpu`` configuration to a dataset's nnU-Net plans.

    nnUNetv2_plan_and_preprocess -d 901 -c 3d_fullres
    nnUNetv2_malenia_cpu_plans -d 901
    nnUNetv2_train 901 3d_cpu 0 -tr nnUNetTrainerMalenia_CPUDemo

``3d_cpu`` inherits from ``3d_fullres`` (nnU-Net's own ``inherits_from``), so it shares its preprocessed data
(same ``data_identifier``, nothing is preprocessed again) and changes three things, measured on 2 CPU cores:

* every stage's feature count is halved (48^3 plan: 16..128 instead of 32..256): fwd+bwd of a batch of two 48^3
  patches takes 0.65 s instead of 2.5 s, so four times as many iterations fit in the same minutes;
* the batch size is at most 2: nnU-Net sizes batches to 5 % of the dataset's voxels, so the 80 training cases of
  the CPU phantoms would get batches of 4 and every iteration would take twice as long; the schedules (1,000
  iterations) were measured with 2;
* ``batch_dice`` is on: nnU-Net's per-sample soft Dice rewards pushing every absent label to zero, which on phantom
  cases with one to three small lesions and several absent labels kept plain nnU-Net at all-background for
  hundreds of steps (issue #11). Malenia's losses are per lesion and do not read this flag.

With ``--ct-window LOW HIGH`` it also replaces nnU-Net's CT normalization of the whole plans file (every
configuration, so preprocess again afterwards): clip to [LOW, HIGH] HU, then subtract the window's centre and divide
by a quarter of its width (values in [-2, 2]) instead of clipping to the 0.5-99.5 percentiles of the lesion voxels
and z-scoring with their mean and std. The CPU regime uses the soft-tissue window -160..240 HU (W400/L40): the
lesion statistics of the phantoms span lung (-850 HU) to stones (800 HU), so a 45 HU liver tumour was a 0.1-unit step
in a 3-unit range, and on 2 cores the soft-tissue lesions were the ones that did not learn. Same seeded run, fold-0
validation of the demo's seen phantoms: foreground Dice 0.122 -> 0.202 (colon tumours 0 -> 0.35, liver 0.16 -> 0.29).
The fingerprint's own statistics are kept under ``malenia_ct_window`` in the plans.

    nnUNetv2_plan_and_preprocess -d 901 -c 3d_fullres --no_pp
    nnUNetv2_malenia_cpu_plans -d 901 --ct-window -160 240
    nnUNetv2_preprocess -d 901 -c 3d_fullres

Running the command again is harmless; ``nnUNetv2_plan_and_preprocess`` rewrites the plans file and drops the
configuration, so run this after it.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Sequence

from nnunetv2_malenia.errors import MaleniaInputError, Problem, exit_with_problems
from nnunetv2_malenia.utils.cli import make_parser

CPU_CONFIGURATION = "3d_cpu"
PARENT_CONFIGURATION = "3d_fullres"
WIDTH_DIVISOR = 2
MIN_FEATURES = 8
MAX_BATCH_SIZE = 2
CPU_CT_WINDOW = (-160.0, 240.0)          # the CPU regime's window (HU): W400 / L40, soft tissue
CT_SCHEME = "CTNormalization"
WINDOW_KEY = "malenia_ct_window"


def cpu_configuration(parent: dict, source: str) -> dict:
    """The ``3d_cpu`` entry for a plans file whose ``3d_fullres`` configuration is ``parent``."""
    try:
        features = parent["architecture"]["arch_kwargs"]["features_per_stage"]
    except (KeyError, TypeError):
        raise MaleniaInputError(Problem(source, f"configurations.{PARENT_CONFIGURATION}.architecture.arch_kwargs."
                                        "features_per_stage", "missing: not an nnU-Net v2 plans file"))
    arch = copy.deepcopy(parent["architecture"])
    arch["arch_kwargs"]["features_per_stage"] = [max(MIN_FEATURES, int(f) // WIDTH_DIVISOR) for f in features]
    batch_size = min(MAX_BATCH_SIZE, int(parent.get("batch_size", MAX_BATCH_SIZE)))
    return {"inherits_from": PARENT_CONFIGURATION, "architecture": arch, "batch_size": batch_size, "batch_dice": True}


def apply_ct_window(plans: dict, window: Sequence[float], source: str) -> None:
    """Replace the intensity properties of every CT-normalised channel by the fixed window (see the module doc)."""
    low, high = (float(v) for v in window)
    if not low < high:
        raise MaleniaInputError(Problem(source, "--ct-window", f"LOW must be below HIGH; got {low:g} {high:g}"))
    schemes = plans["configurations"][PARENT_CONFIGURATION].get("normalization_schemes", [])
    channels = [str(i) for i, scheme in enumerate(schemes) if scheme == CT_SCHEME]
    properties = plans.get("foreground_intensity_properties_per_channel", {})
    if not channels or any(c not in properties for c in channels):
        raise MaleniaInputError(Problem(source, f"configurations.{PARENT_CONFIGURATION}.normalization_schemes",
                                        f"--ct-window needs CT channels ({CT_SCHEME}) with intensity properties; "
                                        f"the plans have {schemes or 'none'}"))
    record = plans.setdefault(WINDOW_KEY, {})
    record.setdefault("fingerprint_properties", {c: dict(properties[c]) for c in channels})   # the first run's
    record["window_hu"] = [low, high]
    for c in channels:
        properties[c].update(percentile_00_5=low, percentile_99_5=high, mean=(low + high) / 2,
                             std=(high - low) / 4)


def add_cpu_configuration(plans_file: Path, ct_window: Optional[Sequence[float]] = None) -> dict:
    """Write the ``3d_cpu`` configuration into ``plans_file`` (atomically) and return it; with ``ct_window``
    (LOW, HIGH in HU) also the fixed CT window of every configuration."""
    from nnunetv2_malenia.utils.atomic_io import write_json_atomic

    from nnunetv2_malenia.attributes.schema import read_json

    if not plans_file.is_file():
        raise MaleniaInputError(Problem(str(plans_file), "", "no plans file: run nnUNetv2_plan_and_preprocess "
                                        f"-c {PARENT_CONFIGURATION} first"))
    plans = read_json(plans_file, "nnU-Net plans")
    parent = plans.get("configurations", {}).get(PARENT_CONFIGURATION)
    if not isinstance(parent, dict):
        raise MaleniaInputError(Problem(str(plans_file), f"configurations.{PARENT_CONFIGURATION}",
                                        f"missing: plan and preprocess with -c {PARENT_CONFIGURATION}"))
    config = cpu_configuration(parent, str(plans_file))
    if ct_window is not None:
        apply_ct_window(plans, ct_window, str(plans_file))
    plans["configurations"][CPU_CONFIGURATION] = config
    write_json_atomic(plans, plans_file)
    return config


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = make_parser("nnUNetv2_malenia_cpu_plans", __doc__)
    p.add_argument("-d", required=True, help="dataset name or id (planned with -c 3d_fullres)")
    p.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("--ct-window", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="CT normalization by a fixed HU window for every configuration of the plans (the CPU regime: "
                        f"{CPU_CT_WINDOW[0]:g} {CPU_CT_WINDOW[1]:g}); run nnUNetv2_preprocess -c "
                        f"{PARENT_CONFIGURATION} afterwards")
    args = p.parse_args(argv)
    try:
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

        from nnunetv2_malenia.paths import nnunet_folder

        try:
            name = maybe_convert_to_dataset_name(args.d)
        except RuntimeError as e:
            raise MaleniaInputError(Problem("nnUNet_preprocessed", "-d", str(e)))
        plans_file = nnunet_folder("nnUNet_preprocessed") / name / f"{args.p}.json"
        config = add_cpu_configuration(plans_file, args.ct_window)
    except MaleniaInputError as e:
        exit_with_problems(e)
    features = config["architecture"]["arch_kwargs"]["features_per_stage"]
    print(f"{plans_file}: configuration {CPU_CONFIGURATION!r} (inherits {PARENT_CONFIGURATION}, features {features}, "
          f"batch size {config['batch_size']}, batch_dice on); train with: "
          f"nnUNetv2_train {args.d} {CPU_CONFIGURATION} FOLD -tr TRAINER")
    if args.ct_window:
        print(f"CT normalization: window {args.ct_window[0]:g}..{args.ct_window[1]:g} HU for every configuration; "
              f"preprocess again: nnUNetv2_preprocess -d {args.d} -c {PARENT_CONFIGURATION} -p {args.p}")


if __name__ == "__main__":
    main()
