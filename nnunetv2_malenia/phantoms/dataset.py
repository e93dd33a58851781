"""Write a whole phantom dataset in nnU-Net raw format plus its Malenia attribute files."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from tqdm import tqdm

from nnunetv2_malenia.attributes.knowledge_table import KnowledgeTable
from nnunetv2_malenia.errors import MaleniaInputError, Problem
from nnunetv2_malenia.paths import DATASET_ATTRIBUTES_FILENAME
from nnunetv2_malenia.phantoms.anatomy import LOCATION_KEYS, ORGAN_REGIONS
from nnunetv2_malenia.inference.location_map import write_location_names
from nnunetv2_malenia.phantoms.generator import PhantomConfig, generate_case, label_names
from nnunetv2_malenia.phantoms.lesion_render import check_renderable
from nnunetv2_malenia.phantoms.writer import write_nifti
from nnunetv2_malenia.utils.atomic_io import write_json_atomic

TEST_ATTRIBUTES_FILENAME = "malenia_attributes_test.json"
# The user's --knowledge-table files, merged and copied into the dataset: an absolute path to the user's file would
# break the dataset as soon as the file moves, and the dataset must describe the lesions it was rendered from.
KNOWLEDGE_TABLE_FILENAME = "malenia_knowledge_table.json"
SPLITS = ("seen", "unseen", "all", "user")


def split_diseases(table: KnowledgeTable, split: str, with_unlabelled_unseen: bool) -> Tuple[Tuple[str, ...],
                                                                                             Tuple[str, ...]]:
    """(labelled, rendered-but-unlabelled) diseases of a split. User diseases (no paper split) go to 'all' and are
    alone in 'user' (a test set for a disease defined only in a --knowledge-table file)."""
    if split not in SPLITS:
        raise MaleniaInputError(Problem("", "--split", f"unknown split {split!r}; choose {', '.join(SPLITS)}"))
    if split == "all":
        return tuple(table.names), ()
    if split == "user":
        user = tuple(n for n, d in table.diseases.items() if d.paper_split is None)
        if not user:
            raise MaleniaInputError(Problem(", ".join(table.files[1:]) or "--knowledge-table", "diseases",
                                            "--split user renders the diseases of the --knowledge-table files that "
                                            "have no paper_split; there are none"))
        return user, ()
    labelled = tuple(table.split(split))
    unlabelled = tuple(table.split("unseen")) if (split == "seen" and with_unlabelled_unseen) else ()
    return labelled, unlabelled


@dataclass(frozen=True)
class _Job:
    table_files: Tuple[str, ...]
    config: PhantomConfig
    index: int
    case_id: str
    images_dir: str
    labels_dir: str
    locations_dir: str


_TABLE_CACHE: Dict[Tuple[str, ...], KnowledgeTable] = {}


def _table(files: Tuple[str, ...]) -> KnowledgeTable:
    from nnunetv2_malenia.attributes import load_knowledge_table

    if files not in _TABLE_CACHE:
        _TABLE_CACHE[files] = load_knowledge_table(list(files[1:]))   # files[0] is the default table
    return _TABLE_CACHE[files]


def _run_job(job: _Job):
    table = _table(job.table_files)
    case = generate_case(table.diseases, job.config, job.index)
    spacing, origin, direction = case.geometry or (job.config.spacing, (0.0, 0.0, 0.0), None)
    for array, folder, filename in ((case.image, job.images_dir, f"{job.case_id}_0000.nii.gz"),
                                    (case.label, job.labels_dir, f"{job.case_id}.nii.gz"),
                                    (case.locations, job.locations_dir, f"{job.case_id}.nii.gz")):
        write_nifti(array, spacing, Path(folder) / filename, origin, direction)
    return job.case_id, case.phase, case.records


def restrict_to_background(config: PhantomConfig, table: KnowledgeTable) -> Tuple[PhantomConfig, List[str]]:
    """Real-anatomy mode: drop diseases none of whose locations exist in the organ masks; return them too."""
    from dataclasses import replace

    from nnunetv2_malenia.phantoms.real_anatomy import cached_real_anatomy, present_regions

    _, anatomy, _, _ = cached_real_anatomy(config.background, config.organs)
    present = set(present_regions(anatomy))
    ok = lambda n: any(loc in present for loc in table[n].value_keys["location"])
    skipped = [n for n in config.labelled + config.unlabelled if not ok(n)]
    new = replace(config, labelled=tuple(n for n in config.labelled if ok(n)),
                  unlabelled=tuple(n for n in config.unlabelled if ok(n)))
    if not new.labelled:
        raise MaleniaInputError(Problem(str(config.organs), "--organs", "no organ mask for any disease of the split"))
    return new, skipped


def write_phantom_dataset(out_folder: Path, table: KnowledgeTable, config: PhantomConfig, num_cases: int,
                          num_test_cases: int = 0, num_processes: int = 2, case_prefix: str = "phantom",
                          dataset_name: str | None = None) -> Path:
    """Write imagesTr/labelsTr/locationsTr (+ imagesTs/labelsTs/locationsTs), dataset.json,
    malenia_attributes(.json, _test.json) and, with extra knowledge tables, their merged copy. ``dataset_name``: dataset.json's name when ``out_folder`` is a
    temporary folder that is renamed afterwards."""
    check_renderable({n: table[n] for n in config.labelled + config.unlabelled})
    out_folder = Path(out_folder)
    names = label_names(config)
    jobs: List[Tuple[str, _Job]] = []
    for part, count, offset in (("Tr", num_cases, 0), ("Ts", num_test_cases, num_cases)):
        for i in range(count):
            jobs.append((part, _Job(tuple(table.files), config, offset + i, f"{case_prefix}_{offset + i:05d}",
                                    str(out_folder / f"images{part}"), str(out_folder / f"labels{part}"),
                                    str(out_folder / f"locations{part}"))))
    results: Dict[str, dict] = {"Tr": {}, "Ts": {}}
    if num_processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(num_processes) as pool:
            outs = list(tqdm(pool.map(_run_job, [j for _, j in jobs]), total=len(jobs), desc="phantoms"))
    else:
        outs = [_run_job(j) for _, j in tqdm(jobs, desc="phantoms")]
    for (part, _), (case_id, _phase, records) in zip(jobs, outs):
        results[part][case_id] = records
    dataset_json = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{n: i + 1 for i, n in enumerate(names)}},
        "numTraining": num_cases,
        "file_ending": ".nii.gz",
        "name": dataset_name or out_folder.name,
        "description": "Malenia phantom CT: analytic anatomy with attribute-controlled lesions",
    }
    write_json_atomic(dataset_json, out_folder / "dataset.json")
    for part, count in (("Tr", num_cases), ("Ts", num_test_cases)):
        if count:     # each case's organ sub-regions, for nnUNetv2_malenia_predict --location-maps
            write_location_names(out_folder / f"locations{part}", LOCATION_KEYS)
    label_entries = {n: {"disease": n} for n in config.labelled}
    if config.organ_labels:
        label_entries.update({o: {"organ": o, "description": f"normal {o}"} for o in ORGAN_REGIONS})
    if table.files[1:]:
        from nnunetv2_malenia.attributes.knowledge_table import load_knowledge_table, table_to_json

        user_table = load_knowledge_table(list(table.files[1:]), include_default=False)
        write_json_atomic(table_to_json(user_table), out_folder / KNOWLEDGE_TABLE_FILENAME)
    for part, filename in (("Tr", DATASET_ATTRIBUTES_FILENAME), ("Ts", TEST_ATTRIBUTES_FILENAME)):
        if part == "Ts" and num_test_cases == 0:
            continue
        attrs = {"format_version": 1, "labels": label_entries, "cases": results[part]}
        if table.files[1:]:
            attrs["knowledge_table"] = KNOWLEDGE_TABLE_FILENAME      # relative to the attribute file
        write_json_atomic(attrs, out_folder / filename)
    return out_folder
