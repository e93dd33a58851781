"""Phantom generator: rendered images obey their attribute records; dataset files are valid and deterministic."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunetv2_malenia.attributes import load_dataset_attributes, load_knowledge_table
from nnunetv2_malenia.phantoms.anatomy import build_anatomy, parenchyma_hu, render_anatomy
from nnunetv2_malenia.phantoms.cli import main
from nnunetv2_malenia.phantoms.dataset import split_diseases
from nnunetv2_malenia.phantoms.lesion_render import _foreign_regions, render_lesion

SIZE = (40, 40, 40)
TABLE = load_knowledge_table()


def _render(disease: str, seed: int = 0, radius: float = 4.0, **attrs):
    """A noise-free lesion of ``disease`` with chosen aspect values; returns (image, label, anatomy, attrs)."""
    rng = np.random.default_rng(seed)
    anatomy = build_anatomy(SIZE, rng)
    d = TABLE[disease]
    chosen = {a: v[0] for a, v in d.value_keys.items()}
    chosen.update(attrs)
    image = render_anatomy(anatomy, chosen["enhancement_status"])
    lesion = render_lesion(image, anatomy, d, chosen, radius, rng)
    return image, lesion.label_mask, anatomy, chosen


@pytest.mark.parametrize("density,sign", [("hypodense", -1), ("hyperdense", 1)])
def test_density_relative_to_parenchyma(density, sign):
    image, label, _, attrs = _render("kidney tumor", density=density, density_variation="heterogeneous",
                                          specific_features="none", radius=5.0)
    core = ndimage.binary_erosion(label, iterations=1)
    diff = image[core].mean() - parenchyma_hu(attrs["location"], attrs["enhancement_status"])
    assert sign * diff > 20


def test_tumour_along_the_hepatic_vessels_is_hypodense_to_the_liver():
    # judged against the contrast-filled vessel (160 HU) it was painted isodense with the 110 HU liver around it
    image, label, anatomy, attrs = _render("hepatic vessel tumor", location="hepatic_vessels",
                                           enhancement_status="contrast_enhanced", radius=4.0)
    core = ndimage.binary_erosion(label, iterations=1)
    liver = anatomy.organ_mask("liver") & ~ndimage.binary_dilation(label, iterations=2)
    assert image[liver].mean() - image[core].mean() > 30


def test_heterogeneous_has_more_internal_spread_than_homogeneous():
    stds = {}
    for variation in ("homogeneous", "heterogeneous"):
        image, label, _, _ = _render("liver cyst", density_variation=variation, radius=5.0)
        stds[variation] = image[ndimage.binary_erosion(label, iterations=1)].std()
    assert stds["heterogeneous"] > stds["homogeneous"] + 10


def _transition_width(image, label):
    """Voxels in the band between 20% and 80% of the lesion-to-background contrast, per border voxel."""
    inside = np.median(image[ndimage.binary_erosion(label, iterations=1)])
    shell = ndimage.binary_dilation(label, iterations=4) & ~ndimage.binary_dilation(label, iterations=3)
    outside = np.median(image[shell])
    frac = (image - outside) / (inside - outside)
    band = (frac > 0.2) & (frac < 0.8) & ndimage.binary_dilation(label, iterations=4)
    border = label & ~ndimage.binary_erosion(label)
    return band.sum() / border.sum()


def test_ill_defined_margin_is_wider_than_well_defined():
    widths = {s: _transition_width(*_render("liver cyst", surface=s, radius=5.0)[:2])
              for s in ("well_defined", "ill_defined")}
    assert widths["ill_defined"] > 1.5 * widths["well_defined"]


def _sphericity(label):
    area = (label & ~ndimage.binary_erosion(label)).sum()
    return label.sum() ** (2 / 3) / area


def test_round_like_is_more_spherical_than_irregular():
    round_s = np.mean([_sphericity(_render("liver tumor", seed=s, shape="round_like", radius=6.0)[1]) for s in range(3)])
    irr_s = np.mean([_sphericity(_render("liver tumor", seed=s, shape="irregular", radius=6.0)[1]) for s in range(3)])
    assert round_s > irr_s


@pytest.mark.parametrize("phase", ["non_contrast", "contrast_enhanced"])
def test_aorta_ivc_rule_identifies_phase(phase):
    anatomy = build_anatomy(SIZE, np.random.default_rng(1))
    image = render_anatomy(anatomy, phase) + np.random.default_rng(2).normal(0, 12, SIZE)
    vessels = anatomy.mask("aorta") | anatomy.mask("ivc")
    assert (image[vessels].mean() < 80) == (phase == "non_contrast")


@pytest.mark.parametrize("location", ["liver_left_lobe", "liver_right_lobe"])
def test_lesion_centre_lies_in_named_subregion(location):
    _, label, anatomy, _ = _render("liver cyst", location=location, radius=3.0)
    com = tuple(int(round(c)) for c in ndimage.center_of_mass(label))
    assert anatomy.mask(location)[com]


@pytest.mark.parametrize("disease,location,relationship", [
    ("gallbladder tumor", "gallbladder_wall", "close_unclear_boundary"),   # under the liver
    ("pancreas tumor", "pancreas_head", "close_unclear_boundary"),         # beside the liver, IVC and colon
    ("pancreas cyst", "pancreas_body", "not_close"),                       # the gland is thinner than the cyst
])
def test_lesion_never_labels_or_repaints_another_organ(disease, location, relationship):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        anatomy = build_anatomy(SIZE, rng)
        d = TABLE[disease]
        chosen = {a: v[0] for a, v in d.value_keys.items()}
        chosen.update(location=location, relationship=relationship)
        before = render_anatomy(anatomy, chosen["enhancement_status"])
        image = before.copy()
        label = render_lesion(image, anatomy, d, chosen, 5.0, rng).label_mask
        foreign = np.isin(anatomy.region_map, _foreign_regions(anatomy, d.organ))
        assert label.any() and not (label & foreign).any()
        changed = foreign & (np.abs(image - before) > 1e-3)
        # an unclear boundary blurs into the neighbour's first voxel layer only, never deeper
        if relationship == "close_unclear_boundary":
            assert not (changed & ~ndimage.binary_dilation(label)).any()
        else:
            assert not changed.any()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    main(["-d", "901", "-o", str(root), "--split", "seen", "--cases", "4", "--test-cases", "1", "--seed", "3",
          "--size", "40", "40", "40", "--spacing", "8", "8", "8", "--with-unlabeled-unseen", "-np", "1"])
    return root / "Dataset901_MaleniaPhantom"


def test_dataset_attributes_and_split(dataset):
    attrs = load_dataset_attributes(dataset)
    seen = set(TABLE.split("seen"))
    assert {la.disease for la in attrs.lesion_labels} == seen
    dj = json.loads((dataset / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "CT"} and dj["numTraining"] == 4
    for case, per_label in attrs.raw["cases"].items():
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / f"{case}.nii.gz")))
        present = {n for n, v in dj["labels"].items() if v and (label == v).any()}
        assert set(per_label) == present          # a record exactly for every labelled lesion type present
        assert set(per_label) <= seen
        for record in per_label.values():
            assert len(record["enhancement_status"]) == 1
    assert json.loads((dataset / "malenia_attributes_test.json").read_text())["cases"]


def test_location_maps_place_every_lesion_in_its_location(dataset):
    """locationsTs/locationsTr: the organ sub-region of every voxel, named by locations.json; each rendered lesion's
    centre lies in the location its record names (what --location-maps reads at prediction time)."""
    from nnunetv2_malenia.inference.location_map import read_location_names
    from nnunetv2_malenia.phantoms.anatomy import LOCATION_KEYS
    from nnunetv2_malenia.phantoms.generator import PhantomConfig, generate_case

    names = read_location_names(dataset / "locationsTr", LOCATION_KEYS)
    assert sorted(names.values()) == sorted(LOCATION_KEYS)
    for part, count in (("Tr", 4), ("Ts", 1)):
        assert len(list((dataset / f"locations{part}").glob("*.nii.gz"))) == count
    labelled, unlabelled = split_diseases(TABLE, "seen", with_unlabelled_unseen=True)
    config = PhantomConfig(size=(40, 40, 40), spacing=(8.0, 8.0, 8.0), labelled=labelled, unlabelled=unlabelled,
                           seed=3)
    case = generate_case(TABLE.diseases, config, 0)
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "locationsTr" / "phantom_00000.nii.gz")))
    assert np.array_equal(written.transpose(2, 1, 0), case.locations)     # [Z, Y, X] on disk, [X, Y, Z] in memory
    for _, center, attributes in case.lesions:
        assert names[int(case.locations[center])] == attributes["location"]


def test_nnunet_integrity_check_accepts_dataset(dataset):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(dataset), num_processes=1)


def test_byte_identical_across_runs(dataset, tmp_path):
    main(["-d", "901", "-o", str(tmp_path), "--split", "seen", "--cases", "4", "--test-cases", "1", "--seed", "3",
          "--size", "40", "40", "40", "--spacing", "8", "8", "8", "--with-unlabeled-unseen", "-np", "2"])
    other = tmp_path / "Dataset901_MaleniaPhantom"
    files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    for f in files:
        assert (dataset / f).read_bytes() == (other / f).read_bytes(), f


def test_unseen_split_has_only_unseen_diseases():
    labelled, unlabelled = split_diseases(TABLE, "unseen", with_unlabelled_unseen=True)
    assert set(labelled) == set(TABLE.split("unseen")) and not unlabelled


def test_user_disease_with_unrenderable_value_is_rejected(tmp_path, capsys):
    table = {"format_version": 1, "diseases": {"spleen oddity": {
        "organ": "spleen", "attributes": {
            "enhancement_status": ["contrast_enhanced"], "location": ["spleen"], "shape": ["round_like"],
            "density": ["hypodense"], "density_variation": ["homogeneous"],
            "surface": ["smooth glossy margin"], "relationship": ["not_close"], "specific_features": ["none"]}}}}
    f = tmp_path / "table.json"
    f.write_text(json.dumps(table))
    from bad_inputs import run_bad

    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "902", "-o", tmp_path, "--split", "all", "--cases", "1",
                                                         "--size", "24", "24", "24", "--knowledge-table", f, "-np", "1"],
                     "knowledge table with a value the renderer cannot draw", capsys)
    assert "surface" in err and "well_defined" in err
    assert not (tmp_path / "Dataset902_MaleniaPhantom").exists()


def test_renderable_user_disease_is_rendered(tmp_path):
    table = {"format_version": 1, "diseases": {"spleen cyst": {
        "organ": "spleen", "attributes": {
            "enhancement_status": ["contrast_enhanced"], "location": ["spleen"], "shape": ["round_like"],
            "density": ["hypodense"], "density_variation": ["homogeneous"], "surface": ["well_defined"],
            "relationship": ["not_close"], "specific_features": ["fluid_density"]}}}}
    f = tmp_path / "table.json"
    f.write_text(json.dumps(table))
    main(["-d", "903", "-o", str(tmp_path), "--split", "all", "--cases", "2", "--size", "32", "32", "32",
          "--knowledge-table", str(f), "-np", "1"])
    attrs = load_dataset_attributes(tmp_path / "Dataset903_MaleniaPhantom")
    assert "spleen cyst" in attrs.labels


def test_real_anatomy_mode(tmp_path):
    from pathlib import Path

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example_ct"
    if not (data / "ct.nii.gz").is_file():
        pytest.skip(f"example CT not found at {data}")
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2_malenia.phantoms.real_anatomy import load_real_anatomy, scan_phase

    main(["-d", "904", "-o", str(tmp_path), "--split", "all", "--cases", "2", "--background",
          str(data / "ct.nii.gz"), "--organs", str(data / "organs"), "-np", "1"])
    folder = tmp_path / "Dataset904_MaleniaPhantom"
    verify_dataset_integrity(str(folder), num_processes=1)
    attrs = load_dataset_attributes(folder)
    _, anatomy, _, _ = load_real_anatomy(data / "ct.nii.gz", data / "organs")
    phase = scan_phase(anatomy)
    for case, per_label in attrs.raw["cases"].items():
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
        assert label.any()
        for record in per_label.values():
            assert record["enhancement_status"] == [phase]


# --- issue 13: refusals before anything is written, a fresh folder every run, the table travels with the dataset --

SMALL = ["--split", "seen", "--cases", "1", "--size", "16", "16", "16", "-np", "1"]


def test_existing_dataset_is_refused_without_overwrite_and_replaced_whole_with_it(tmp_path, capsys):
    from bad_inputs import run_bad

    main(["-d", "905", "-o", str(tmp_path), "--cases", "2", *SMALL[:2], *SMALL[4:]])
    folder = tmp_path / "Dataset905_MaleniaPhantom"
    assert (folder / "labelsTr" / "phantom_00001.nii.gz").is_file()
    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "905", "-o", tmp_path, *SMALL],
                     "dataset folder exists", capsys)
    assert "--overwrite" in err and str(folder) in err
    main(["-d", "905", "-o", str(tmp_path), *SMALL, "--overwrite"])
    # the earlier run's second case is gone, numTraining matches the files, and no hidden temporary folder is left
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["phantom_00000.nii.gz"]
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset905_MaleniaPhantom"]


def test_second_name_for_a_taken_id_and_bad_ids_are_refused(tmp_path, capsys):
    from bad_inputs import run_bad

    main(["-d", "906", "-o", str(tmp_path), *SMALL])
    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "906", "-o", tmp_path, "--name", "Other", *SMALL],
                     "second name for a taken dataset id", capsys)
    assert "Dataset906_MaleniaPhantom" in err and "already taken" in err
    for bad_id in ("-5", "1000"):
        _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", bad_id, "-o", tmp_path, *SMALL],
                         "dataset id out of range", capsys)
        assert "1..999" in err
    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "907", "-o", tmp_path, "--name", "a/b", *SMALL],
                     "dataset name with a path separator", capsys)
    assert "--name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset906_MaleniaPhantom"]


def test_unwritable_outputs_are_refused_before_rendering(tmp_path, capsys):
    from bad_inputs import run_bad

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "908", "-o", blocker / "raw", *SMALL],
                     "-o below a file", capsys)
    assert "-o" in err and "is a file" in err
    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "908", "-o", tmp_path / "raw", "--preview", blocker,
                                                         *SMALL], "--preview is a file", capsys)
    assert "--preview" in err and "not a folder" in err
    assert not (tmp_path / "raw").exists()


def test_knowledge_table_is_copied_into_the_dataset(tmp_path):
    table = {"format_version": 1, "diseases": {"spleen cyst": {
        "organ": "spleen", "attributes": {
            "enhancement_status": ["contrast_enhanced"], "location": ["spleen"], "shape": ["round_like"],
            "density": ["hypodense"], "density_variation": ["homogeneous"], "surface": ["well_defined"],
            "relationship": ["not_close"], "specific_features": ["fluid_density"]}}}}
    f = tmp_path / "elsewhere" / "table.json"
    f.parent.mkdir()
    f.write_text(json.dumps(table))
    main(["-d", "909", "-o", str(tmp_path / "raw"), "--split", "all", "--cases", "1", "--size", "32", "32", "32",
          "--knowledge-table", str(f), "-np", "1"])
    folder = tmp_path / "raw" / "Dataset909_MaleniaPhantom"
    assert json.loads((folder / "malenia_attributes.json").read_text())["knowledge_table"] == \
        "malenia_knowledge_table.json"
    f.unlink()                                      # the user's table moves away; the dataset must not notice
    moved = tmp_path / "moved"
    (tmp_path / "raw").rename(moved)
    attrs = load_dataset_attributes(moved / "Dataset909_MaleniaPhantom")
    assert attrs.labels["spleen cyst"].disease == "spleen cyst"


def test_user_split_renders_only_the_knowledge_table_file_diseases(tmp_path):
    """The committed example of a new disease renders alone (benchmarks/bench_user_disease.py's test set)."""
    example = Path(__file__).resolve().parents[1] / "attribute_tables" / "user_disease_example.json"
    main(["-d", "904", "-o", str(tmp_path), "--split", "user", "--cases", "1", "--test-cases", "1", "--size", "32",
          "32", "32", "--knowledge-table", str(example), "-np", "1"])
    labels = json.loads((tmp_path / "Dataset904_MaleniaPhantom" / "dataset.json").read_text())["labels"]
    assert labels == {"background": 0, "calcified liver granuloma": 1}


def test_user_split_without_a_user_disease_is_refused(tmp_path, capsys):
    from bad_inputs import run_bad

    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "906", "-o", tmp_path, "--split", "user", "--cases",
                                                         "1", "--size", "24", "24", "24", "-np", "1"],
                     "--split user without a knowledge table of new diseases", capsys)
    assert "--split user" in err and "paper_split" in err
    assert not (tmp_path / "Dataset906_MaleniaPhantom").exists()


def test_every_seen_disease_leads_cases_whatever_phases_it_accepts():
    # Phase-first sampling put half the seen cases in non-contrast scans, which only lung tumours and gallstones
    # accept, so each contrast-only disease led about one case in twelve instead of one in six.
    from nnunetv2_malenia.phantoms.generator import PhantomConfig, generate_case

    labelled, _ = split_diseases(TABLE, "seen", False)
    config = PhantomConfig(size=(24, 24, 24), labelled=labelled, seed=3)
    leaders = [generate_case(TABLE.diseases, config, i).lesions[0][0] for i in range(120)]
    shares = {name: leaders.count(name) / len(leaders) for name in labelled}
    assert all(0.08 <= share <= 0.27 for share in shares.values()), shares      # 1/6 each, binomial spread


@pytest.mark.parametrize("low, high", [(2, 4), (3, 3)])
def test_lesions_per_case_stay_in_the_asked_range(low, high):
    from nnunetv2_malenia.phantoms.generator import PhantomConfig, generate_case

    labelled, _ = split_diseases(TABLE, "seen", False)
    config = PhantomConfig(size=(32, 32, 32), labelled=labelled, lesions_per_case=(low, high))
    counts = {len(generate_case(TABLE.diseases, config, i).lesions) for i in range(30)}
    assert counts <= set(range(low, high + 1)) and (low == high or len(counts) > 1)


@pytest.mark.parametrize("values", [["0", "2"], ["3", "2"], ["1", "16"]])
def test_bad_lesions_per_case_is_refused(tmp_path, capsys, values):
    from bad_inputs import run_bad

    _, err = run_bad(main, "nnUNetv2_malenia_phantoms", ["-d", "909", "-o", tmp_path, "--lesions-per-case", *values,
                                                         *SMALL], f"--lesions-per-case {' '.join(values)}", capsys)
    assert "--lesions-per-case" in err and "MAX <= 15" in err
    assert not any(tmp_path.iterdir())
