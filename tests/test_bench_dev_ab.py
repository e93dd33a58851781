"""bench_dev_ab.py: the dev sets are none of the benchmark's sets, and its table shows what the README cites."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_dev_ab as dev  # noqa: E402
import bench_zero_shot as bz  # noqa: E402


def test_dev_sets_are_not_the_benchmark_sets():
    seeds = {seed for _, _, seed in dev.DEV_SETS.values()}
    assert not seeds & set(bz.SEEDS.values())                       # other phantom seeds than A's and C's
    assert {dev.DEV_UNSEEN_ID, dev.DEV_SEEN_ID}.isdisjoint({bz.SEEN_ID, bz.MERGED_ID, bz.UNSEEN_ID})


def test_markdown_row_per_trainer_and_penalty():
    row = {"trainer": "T", "seed": 1, "seen_penalty": 1.25, "finding": 0.4671, "unseen": 0.065, "seen": None,
           "named": 11, "lesions": 41, "location": 0.024, "density": 0.463, "enhancement_status": 0.707,
           "seen_location": 0.3}
    table = dev.markdown([row, dict(row, seen_penalty=0.0)]).splitlines()
    assert len(table) == 4 and table[0].startswith("| trainer | seed | G |")
    assert table[2] == "| T | 1 | 1.25 | model | 0.467 | 0.065 | – | 11/41 | 0.024 | 0.463 | 0.707 | 0.300 |"
    assert table[3].startswith("| T | 1 | 0 | model |")
    assert dev.markdown([dict(row, naming_rule="likelihood")]).splitlines()[2].startswith("| T | 1 | 1.25 | likelihood |")


class Scored(Exception):
    """Raised in place of the scoring: these tests check the predictions ``score`` runs, not its figures."""


def prediction_commands(tmp_path, monkeypatch, *settings: dict) -> list:
    """The commands ``score`` runs for each settings dict (its keyword arguments after the trainer "T"), in order."""
    bench = dev.bench_for(tmp_path)
    steps = []
    monkeypatch.setattr(bench, "step", lambda name, *cmd: steps.append(cmd))
    monkeypatch.setattr(dev, "training_seed", lambda bench: 0)

    def stop(*args):
        raise Scored

    monkeypatch.setattr(dev.bz, "evaluate_naming", stop)
    for setting in settings:
        with pytest.raises(Scored):
            dev.score(bench, "T", **setting)
    return steps


def test_a_naming_rule_is_passed_to_predict_and_predicts_into_its_own_folder(tmp_path, monkeypatch):
    steps = prediction_commands(tmp_path, monkeypatch, dict(penalty=0.75), dict(penalty=0.75, naming_rule="likelihood"))
    default, chosen = steps[:4], steps[4:]
    assert all("--naming-rule" not in cmd for cmd in default)
    assert all(cmd[cmd.index("--naming-rule") + 1] == "likelihood" for cmd in chosen)
    folders = lambda cmds: {Path(cmd[cmd.index("-o") + 1]).parent.name for cmd in cmds}
    assert folders(default) == {"T_G0.75"} and folders(chosen) == {"T_G0.75_likelihood"}


def test_location_maps_go_to_every_prediction_with_reports_into_their_own_folder(tmp_path, monkeypatch):
    steps = prediction_commands(tmp_path, monkeypatch, dict(penalty=1.0, location_maps=True))
    assert len(steps) == 4
    for cmd in steps:            # each set's own organ maps, and reports, from which the maps name the lesions
        images = Path(cmd[cmd.index("-i") + 1])
        assert Path(cmd[cmd.index("--location-maps") + 1]) == images.parent / "locationsTs"
        assert "--no-reports" not in cmd
    assert {Path(cmd[cmd.index("-o") + 1]).parent.name for cmd in steps} == {"T_G1_located"}
    row = {"trainer": "T", "seed": 0, "seen_penalty": 1.0, "location_maps": True, "finding": 0.5, "unseen": 0.1,
           "seen": 0.7, "named": 20, "lesions": 41, "location": 1.0, "density": 0.8, "enhancement_status": 1.0,
           "seen_location": 1.0}
    assert dev.markdown([row]).splitlines()[2].startswith("| T | 0 | 1 + maps | model | 0.500 |")


def test_a_model_is_reused_only_for_the_seed_it_was_trained_with(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MALENIA_SEED", "2")
    bench = dev.bench_for(tmp_path)
    fold = bench.model(bz.SEEN_ID, "T") / "fold_0"
    fold.mkdir(parents=True)
    (fold / "checkpoint_final.pth").write_bytes(b"")
    assert dev.trained_seed(fold) is None                       # no log names a seed
    with pytest.raises(SystemExit, match="without a seed in its training log, this run asks for 2"):
        dev.train(bench, "T")
    line = "2026-12-06 23:09:29.285568: MALENIA_SEED={}: network initialisation and patch sampling seeded \n"
    (fold / "training_log_2026_12_6_20_08_52.txt").write_text("Epoch 0\n" + line.format(1))
    assert dev.trained_seed(fold) == 1
    with pytest.raises(SystemExit, match="MALENIA_SEED=1, this run asks for 2"):
        dev.train(bench, "T")
    (fold / "training_log_2026_12_6_23_09_28.txt").write_text(line.format(2))   # continued with seed 2: the last log
    dev.train(bench, "T")                                       # reused, nothing trained
    assert "reused" in capsys.readouterr().out


def test_trainers_are_required():
    with pytest.raises(SystemExit):
        dev.main(["--work", "/nonexistent"])


def test_test_sets_are_the_benchmark_sets_in_their_own_folder():
    unseen, seen, folder = dev.scored_sets(test_sets=True)
    assert (unseen, seen) == (bz.UNSEEN_ID, bz.SEEN_ID)
    dev_unseen, dev_seen, dev_folder = dev.scored_sets(test_sets=False)
    assert (dev_unseen, dev_seen) == (dev.DEV_UNSEEN_ID, dev.DEV_SEEN_ID)
    assert folder != dev_folder                       # test-set predictions never overwrite dev-set ones


def test_dev_and_test_sets_are_written_like_the_benchmark(tmp_path, monkeypatch):
    """bench_dev_ab writes its sets through bench_zero_shot's writer, so its A and C are the benchmark's cases."""
    calls = []
    monkeypatch.setattr(bz, "write_phantom_set", lambda bench, *args, **kwargs: calls.append(args))
    monkeypatch.setattr(dev.bz, "plan_and_preprocess", lambda *a, **k: None)
    bench = dev.bench_for(tmp_path)
    monkeypatch.setattr(bench, "step", lambda *a, **k: None)
    dev.write_data(bench)
    bz.write_unseen_phantoms(bench)
    p = bench.profile
    assert calls[0] == (bz.SEEN_ID, "seen", p.train_cases, p.seen_test_cases, bz.SEEDS["phantoms_seen"], "seen")
    assert calls[-1] == (bz.UNSEEN_ID, "unseen", p.unseen_train_cases, p.unseen_test_cases,
                         bz.SEEDS["phantoms_unseen"], "unseen")
    assert {c[0] for c in calls[1:-1]} == {dev.DEV_UNSEEN_ID, dev.DEV_SEEN_ID}
