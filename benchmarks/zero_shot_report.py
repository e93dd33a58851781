"""Tables, plots and JSON of bench_zero_shot.py: ``assemble`` gathers the run's measurements into one dict,
``write_report`` renders it (benchmark.md, benchmark.json, PNGs). Every number is read from that dict: nothing here
is typed by hand."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunetv2_malenia.attributes.schema import ASPECTS

ARM_TITLES = {"malenia": "Malenia zero-shot (A)", "agnostic": "nnU-Net class-agnostic (B)",
              "supervised": "nnU-Net supervised (C, upper bound)", "per_class": "nnU-Net per-class (A)"}


def _title(arm: str) -> str:
    return ARM_TITLES.get(arm, arm.replace("nnUNetTrainerMalenia_", "ablation "))


def _clean(value):
    """NaN -> None so that benchmark.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _seed_note(seeds: dict) -> str:
    if seeds.get("training") is None:
        return "phantom generation is seeded; nnU-Net training is not (nnU-Net sets no global seed)"
    return ("phantom generation is seeded, and training through MALENIA_SEED (weights and patch sampling; repeatable "
            "on a CPU with nnUNet_n_proc_DA=0, not with augmentation workers or on a GPU)")


def generalised_quality(scores: dict, present: Sequence[str], A_labels: Sequence[str]) -> dict:
    """bench_zero_shot.score_generalised's evaluations -> per-disease Dice/NSD on both test sets, their means over
    the diseases the references have, and the naming of predicted and of reference lesions (the setting's keys,
    e.g. seen_penalty, kept)."""
    def rows(evaluation, diseases):
        return {d: {k: evaluation["per_disease"][d][k] for k in ("dice", "nsd")} for d in diseases}

    def means(per_disease):
        return {k: _mean(r[k] for r in per_disease.values()) for k in ("dice", "nsd")}

    unseen, seen = rows(scores["unseen"], present), rows(scores["seen"], A_labels)
    setting = {k: v for k, v in scores.items() if k not in ("unseen", "seen", "naming")}
    return {**setting, "unseen_per_disease": unseen, "unseen_mean": means(unseen),
            "seen_per_disease": seen, "seen_mean": means(seen),
            "lesion_reports": scores["unseen"]["lesion_reports"], "naming_reference_lesions": scores["naming"]}


def assemble(*, profile_name, profile, arms, names, C_labels, A_labels, evaluations, agnostic, seen, naming, epochs,
             gpu, rss, times, size96, hardware, versions, seeds, nsd_tolerance_mm, total_s, work,
             baseline: str = "agnostic", generated_by: Optional[str] = None, notes: Sequence[str] = (),
             calibrated: Optional[dict] = None, located: Optional[dict] = None) -> dict:
    """``baseline``: the arm whose epoch and predict times the others are divided by; ``generated_by`` (the command
    line) and ``notes`` (markdown lines) head the report of a script other than bench_zero_shot.py (gpu_check.py);
    ``size96`` may be None (not measured); ``calibrated`` and ``located``: bench_zero_shot.score_generalised's
    results with a seen penalty and with location maps, or None."""
    zero_shot_arms = [a for a in arms if a != "per_class"]
    unseen: Dict[str, dict] = {}
    for disease in C_labels:
        row = {}
        for arm in zero_shot_arms:
            if evaluations.get(arm) is None:            # class-agnostic arm: oracle-named components
                d = agnostic[arm]["oracle_named"][disease]
            else:
                d = evaluations[arm]["per_disease"][disease]
            row[arm] = {"dice": d["dice"], "nsd": d["nsd"]}
        row["ratio_zero_shot_over_supervised_dice"] = _ratio(row["malenia"]["dice"], row["supervised"]["dice"])
        row["reference_cases_with_disease"] = agnostic["malenia"]["reference_cases_with"][disease]
        unseen[disease] = row
    # a disease no test reference has can only collect false positives: it would lower the mean of an arm that
    # predicts it and leave the others alone (both empty = not scored), so the means leave it out
    present = [d for d in unseen if unseen[d]["reference_cases_with_disease"]]
    mean = {arm: {k: _mean(unseen[d][arm][k] for d in present) for k in ("dice", "nsd")} for arm in zero_shot_arms}
    mean["diseases"] = present
    mean["ratio_zero_shot_over_supervised_dice"] = _ratio(mean["malenia"]["dice"], mean["supervised"]["dice"])

    seen_rows = {d: {arm: {k: seen[arm]["per_disease"][d][k] for k in ("dice", "nsd")} for arm in seen}
                 for d in A_labels} if seen else {}
    # lesions in the references (the same for every arm): how many lesions each disease's mean rests on
    seen_lesions = {d: next(iter(seen.values()))["per_disease"][d]["detection"]["n_reference"]
                    for d in A_labels} if seen else {}
    reports = {arm: evaluations[arm]["lesion_reports"] for arm in zero_shot_arms
               if evaluations.get(arm) and "lesion_reports" in evaluations[arm]}

    # bench_zero_shot.py: "agnostic", same images as Malenia's A, same schedule: the train-step reference
    cost = {"train": {arm: dict(epochs[arm], trainer=arms[arm][1], peak_rss_mib=rss[f"train {arm}"]["max_rss_mib"],
                                wall_s=times[f"train {arm}"],
                                epoch_time_ratio_vs_baseline=_ratio(epochs[arm]["median_epoch_s"],
                                                                    epochs[baseline]["median_epoch_s"]))
                      for arm in arms},
            "predict_unseen": {arm: {"wall_s": times[f"predict {arm} on C test"],
                                     "peak_rss_mib": rss[f"predict {arm} on C test"]["max_rss_mib"],
                                     "wall_ratio_vs_baseline": _ratio(times[f"predict {arm} on C test"],
                                                                      times[f"predict {baseline} on C test"]),
                                     "lesion_reports_wall_s": times.get(f"lesion reports {arm} on C test")}
                               for arm in zero_shot_arms},
            "baseline_arm": baseline, "network_96": size96, "gpu_train_step": gpu}
    return _clean({
        "profile": profile_name, "profile_settings": profile, "datasets": names,
        "generated_by": generated_by or f"benchmarks/bench_zero_shot.py --profile {profile_name}", "notes": list(notes),
        "arms": {arm: {"dataset": names[d], "trainer": t, "title": _title(arm)} for arm, (d, t) in arms.items()},
        "hardware": hardware, "versions": versions, "seeds": seeds,
        "seed_note": _seed_note(seeds),
        "nsd_tolerance_mm": nsd_tolerance_mm,
        "quality": {"unseen_per_disease": unseen, "unseen_mean": mean,
                    "class_agnostic_lesion": {arm: agnostic[arm]["lesion"] for arm in zero_shot_arms},
                    "seen_per_disease": seen_rows, "seen_reference_lesions": seen_lesions,
                    "lesion_reports": reports, "naming_reference_lesions": naming,
                    "detection": {arm: evaluations[arm]["summary"]["all"]["detection"] for arm in zero_shot_arms
                                  if evaluations.get(arm)},
                    "calibrated": generalised_quality(calibrated, present, A_labels) if calibrated else None,
                    "located": generalised_quality(located, present, A_labels) if located else None},
        "cost": cost, "wall_times_s": times, "total_wall_s": total_s, "work": work,
        "evaluations": {arm: e for arm, e in evaluations.items() if e is not None}, "seen_evaluations": seen,
    })


def _mean(values) -> Optional[float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _report_lines(rep: dict) -> List[str]:
    """Attribute matching per aspect and disease identification of one arm's lesion reports."""
    lines = []
    if "per_aspect" in rep:
        lines += _table(["aspect", "precision", "recall", "predicted with value", "reference with aspect"],
                        [[a, _f(rep["per_aspect"][a]["precision"]), _f(rep["per_aspect"][a]["recall"]),
                          str(rep["per_aspect"][a]["predicted_with_value"]),
                          str(rep["per_aspect"][a]["reference_with_aspect"])] for a in ASPECTS])
    ident = rep["disease_identification"]
    return lines + ["", f"Disease identification accuracy: {_f(ident['accuracy'])} ({ident['correct']}/"
                        f"{ident['matched']} matched predicted lesions; {rep['n_predicted_lesions']} predicted, "
                        f"{rep['n_reference_lesions']} reference lesions)"]


def markdown(r: dict, plots: List[str]) -> str:
    q, c, hw = r["quality"], r["cost"], r["hardware"]
    arms = [a for a in r["arms"] if a != "per_class"]
    lines = [f"# Zero-shot benchmark: Malenia vs nnU-Net ({r['profile']} profile)", "",
             f"Generated by `{r['generated_by']}`; every number below comes from "
             f"that run ({r['total_wall_s'] / 60:.1f} min).", "", *r["notes"], *([""] if r["notes"] else []),
             f"- Hardware: {hw['cpu']}, {hw['usable_cores']} usable cores of {hw['os_cpu_count']}, "
             f"{hw['memory_gib']} GiB; GPU: {hw['gpu'] or 'none'}; {hw['platform']}, Python {hw['python']}"
             + (f"; CPU training in {hw['cpu_training']}" if hw.get("cpu_training") else ""),
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
             f"- Profile: {json.dumps(r['profile_settings'])}",
             f"- Seeds: {json.dumps(r['seeds'])} ({r['seed_note']})",
             f"- NSD tolerance {r['nsd_tolerance_mm']} mm. Means over cases, cases where reference and prediction "
             "are both empty left out; disease means weigh each disease the same.",
             "- Arms: " + "; ".join(f"{a['title']}: `{a['trainer']}` on {a['dataset']}" for a in r["arms"].values()),
             "", "## Quality", "",
             "### Unseen diseases (C's test set; zero-shot for Malenia)", "",
             "The class-agnostic arm names no disease: its per-disease numbers use the oracle-naming rule (the "
             "predicted connected components that overlap the disease's reference mask count as that disease), "
             "an optimistic bound. Ratio = Malenia DSC / supervised DSC. The mean row averages the diseases that "
             "occur in the test references.", ""]
    header = ["disease", "test cases with it"] + [f"{_title(a)} {m}" for a in arms for m in ("DSC", "NSD")] \
        + ["ratio DSC"]
    rows = [[d, str(row["reference_cases_with_disease"])] + [_f(row[a][m]) for a in arms for m in ("dice", "nsd")]
            + [_f(row["ratio_zero_shot_over_supervised_dice"])] for d, row in q["unseen_per_disease"].items()]
    m = q["unseen_mean"]
    rows.append(["**mean**", ""] + [_f(m[a][k]) for a in arms for k in ("dice", "nsd")]
                + [_f(m["ratio_zero_shot_over_supervised_dice"])])
    lines += _table(header, rows)
    lines += ["", "### Class-agnostic lesion segmentation (C's test set, all lesion labels merged)", ""]
    lines += _table(["arm", "lesion DSC", "lesion NSD", "cases scored"],
                    [[_title(a), _f(v["dice"]), _f(v["nsd"]), f"{v['n_cases_scored']}/{v['n_cases']}"]
                     for a, v in q["class_agnostic_lesion"].items()])
    if q["detection"]:
        lines += ["", "### Lesion detection (C's test set; components, >= 1 voxel overlap, same disease)", ""]
        lines += _table(["arm", "precision", "recall", "F1"],
                        [[_title(a), _f(d["precision"]), _f(d["recall"]), _f(d["f1"])]
                         for a, d in q["detection"].items()])
    if q["seen_per_disease"]:
        lines += seen_lines(q)
    else:
        lines += ["", "Seen-lesion comparison: not in this profile (no per-class arm)."]
    for arm, rep in q["lesion_reports"].items():
        lines += ["", f"### Lesion reports of {_title(arm)}: attribute matching (Table 8) and disease identification",
                  ""] + _report_lines(rep)
    for arm, rep in q.get("naming_reference_lesions", {}).items():
        lines += ["", f"### Naming the true unseen lesions: {_title(arm)} describes C's reference masks", "",
                  "`nnUNetv2_malenia_predict --describe-masks`: every reference lesion is shown to the model, so this "
                  "scores naming apart from finding (attributes per aspect and the top-ranked disease).", ""]
        lines += _report_lines(rep)

    if q.get("calibrated"):
        lines += calibrated_lines(q)
    if q.get("located"):
        lines += located_lines(q)
    lines += ["", "## Cost (same run, same machine)", "",
              f"Epoch times from nnU-Net's training log (median, first epoch left out); every arm runs the same "
              f"schedule, so the ratio to the `{c['baseline_arm']}` arm is the train-step ratio (augmentation and "
              "validation iterations included). Peak memory: maximum RSS of the child process (os.wait4). "
              "Predict: wall time of the CLI call on C's test set (label maps only), imports included; Malenia's "
              "lesion reports are a second call, timed apart (imports and model loading included).", ""]
    pred = c["predict_unseen"]
    lines += _table(["arm", "trainer", "epochs", "median epoch s", "epoch ratio", "train wall s", "train peak RSS MiB",
                     "predict wall s", "predict ratio", "predict peak RSS MiB", "lesion reports s"],
                    [[_title(a), f"`{t['trainer']}`", str(t["epochs"]), _f(t["median_epoch_s"], 2),
                      _f(t["epoch_time_ratio_vs_baseline"]), _f(t["wall_s"], 0), _f(t["peak_rss_mib"], 0),
                      _f(pred[a]["wall_s"], 1) if a in pred else "–",
                      _f(pred[a]["wall_ratio_vs_baseline"]) if a in pred else "–",
                      _f(pred[a]["peak_rss_mib"], 0) if a in pred else "–",
                      _f(pred[a]["lesion_reports_wall_s"], 1) if a in pred else "–"] for a, t in c["train"].items()])
    n = c["network_96"]
    if n:                                          # gpu_check.py's CPU path leaves it out
        lines += ["", f"Network size at 96^3 ({n['plan']}, Malenia with {json.dumps(n['malenia_settings'])}):", ""]
        lines += _table(["network", "parameters (M)", "GFLOPs (one training forward)"],
                        [["plain nnU-Net", _f(n["plain"]["params"] / 1e6, 2), _f(n["plain"]["flops"] / 1e9, 1)],
                         ["MaleniaNet", _f(n["malenia"]["params"] / 1e6, 2), _f(n["malenia"]["flops"] / 1e9, 1)],
                         ["ratio", _f(n["malenia"]["params"] / n["plain"]["params"]),
                          _f(n["malenia"]["flops"] / n["plain"]["flops"])]])
    g = c["gpu_train_step"]
    if g:
        lines += ["", f"GPU, in-process (bench_network networks at this run's plan: patch {g['patch_size']}, batch "
                      f"{g['batch_size']}, autocast, median of {g['reps']} steps after one warm-up):", ""]
        lines += _table(["network", "fwd+bwd+step s", "torch.cuda.max_memory_allocated MiB"],
                        [[k, _f(g[k]["median_step_s"], 3), _f(g[k]["max_memory_allocated_mib"], 0)]
                         for k in ("plain", "malenia")] + [["ratio", _f(g["step_time_ratio"]), "–"]])
    lines += ["", "## Wall time per step", ""]
    lines += _table(["step", "s"], [[k, _f(v, 1)] for k, v in r["wall_times_s"].items()])
    lines += ["", f"Work folder: `{r['work']}`", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def seen_lines(q: dict) -> List[str]:
    """The seen section: per disease its reference lesions in A's test set, then Dice and NSD of each seen arm."""
    lines = ["", "### Seen diseases (A's held-out test set): Malenia vs per-class nnU-Net", ""]
    seen_arms = list(next(iter(q["seen_per_disease"].values())))
    lesions = q.get("seen_reference_lesions", {})          # absent in reports written before it was recorded
    return lines + _table(
        ["disease", "test lesions"] + [f"{_title(a)} {k}" for a in seen_arms for k in ("DSC", "NSD")],
        [[d, str(lesions.get(d, "–"))] + [_f(row[a][k]) for a in seen_arms for k in ("dice", "nsd")]
         for d, row in q["seen_per_disease"].items()]
        + [["**mean**", ""] + [_f(_mean(row[a][k] for row in q["seen_per_disease"].values()))
                               for a in seen_arms for k in ("dice", "nsd")]])


def calibrated_lines(q: dict) -> List[str]:
    """Generalised zero-shot at --seen-penalty G beside G = 0 (the sections above) and the supervised bound."""
    cal = q["calibrated"]
    g = f"`--seen-penalty {cal['seen_penalty']:g}`"
    intro = (f"The Malenia arm's model with every knowledge-table disease a candidate and the logits of the diseases "
             f"it was trained on lowered by {cal['seen_penalty']:g} when a lesion is named (what is lesion stays "
             "lesion). G was chosen on dev phantoms of other seeds, not on these test sets.")
    return generalised_lines(q, "calibrated", f"Generalised zero-shot with calibrated stacking ({g})", intro,
                             f"at {g}")


def located_lines(q: dict) -> List[str]:
    """Generalised zero-shot with each lesion's location read from the test sets' organ maps."""
    g = q["located"].get("seen_penalty") or 0.0
    at = f" and `--seen-penalty {g:g}`" if g else ""
    intro = ("The Malenia arm's model with every knowledge-table disease a candidate and each lesion's location read "
             "from an organ map of its scan (`--location-maps`: the phantoms' `locationsTs`, the sub-regions an organ "
             "segmentation would give) instead of from the tokens: the diseases that do not occur where the lesion "
             "lies keep 1 % of their score, and each predicted lesion (connected component) is labelled with the "
             "disease its report names. "
             + (f"The trained diseases' logits are lowered by {g:g}, the G chosen with location maps on dev phantoms "
                "of other seeds. " if g else "")
             + "An input the paper's Malenia does not use; the location precision below is the map's, not the "
               "model's. Nothing was tuned on these test sets.")
    return generalised_lines(q, "located", f"Generalised zero-shot with location maps (`--location-maps`{at})",
                             intro, "with location maps")


def generalised_lines(q: dict, key: str, title: str, intro: str, setting: str) -> List[str]:
    """One generalised zero-shot setting of the Malenia arm's model (every disease a candidate) beside its plain
    prediction (G = 0, the sections above) and the supervised bound: both test sets, reports and naming."""
    gen = q[key]
    lines = ["", f"### {title}", "", intro + " Unseen diseases (C's test set):", ""]
    unseen = q["unseen_per_disease"]
    lines += _table(["disease", "Malenia G = 0 DSC", f"Malenia {setting} DSC", f"Malenia {setting} NSD",
                     "supervised (C) DSC"],
                    [[d, _f(unseen[d]["malenia"]["dice"]), _f(row["dice"]), _f(row["nsd"]),
                      _f(unseen[d]["supervised"]["dice"])] for d, row in gen["unseen_per_disease"].items()]
                    + [["**mean**", _f(q["unseen_mean"]["malenia"]["dice"]), _f(gen["unseen_mean"]["dice"]),
                        _f(gen["unseen_mean"]["nsd"]), _f(q["unseen_mean"]["supervised"]["dice"])]])
    restricted = q["seen_per_disease"]
    lines += ["", "The seen diseases (A's test set; the seen section above restricts the candidates to A's "
                  "diseases, here every disease is one):", ""]
    lines += _table(["disease", "Malenia, A's diseases only DSC", f"Malenia {setting} DSC",
                     f"Malenia {setting} NSD"],
                    [[d, _f(restricted[d]["malenia"]["dice"]) if d in restricted else "–", _f(row["dice"]),
                      _f(row["nsd"])] for d, row in gen["seen_per_disease"].items()]
                    + [["**mean**", _f(_mean(r["malenia"]["dice"] for r in restricted.values())) if restricted
                        else "–", _f(gen["seen_mean"]["dice"]), _f(gen["seen_mean"]["nsd"])]])
    lines += ["", f"Lesion reports of the prediction {setting} on C's test set:", ""] \
        + _report_lines(gen["lesion_reports"])
    lines += ["", f"Naming C's reference lesions (`--describe-masks`) {setting}:", ""] \
        + _report_lines(gen["naming_reference_lesions"])
    return lines


def plot(r: dict, out: Path) -> List[str]:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import numpy as np

    files = []
    q = r["quality"]
    arms = [a for a in r["arms"] if a != "per_class"]
    diseases = list(q["unseen_per_disease"]) + ["mean"]
    values = {a: [q["unseen_per_disease"][d][a]["dice"] for d in diseases[:-1]] + [q["unseen_mean"][a]["dice"]]
              for a in arms}
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(diseases) * max(1, len(arms) / 3)), 4))
    width = 0.8 / len(arms)
    x = np.arange(len(diseases))
    for i, a in enumerate(arms):
        ax.bar(x + i * width - 0.4 + width / 2, [v if v is not None else 0 for v in values[a]], width,
               label=_title(a))
    ax.set_xticks(x, diseases, rotation=20, ha="right")
    ax.set_ylabel("DSC")
    ax.set_ylim(0, 1)
    ax.set_title(f"Unseen diseases, C's test set ({r['profile']} profile; class-agnostic arm: oracle naming)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "dsc_unseen.png", dpi=110)
    plt.close(fig)
    files.append("dsc_unseen.png")

    c = r["cost"]
    train_arms = list(c["train"])
    panels = [("median epoch (s)", [c["train"][a]["median_epoch_s"] for a in train_arms], train_arms),
              ("train peak RSS (MiB)", [c["train"][a]["peak_rss_mib"] for a in train_arms], train_arms),
              ("predict C test (s)", [c["predict_unseen"][a]["wall_s"] for a in arms], arms)]
    if c["network_96"]:
        panels.append(("GFLOPs at 96^3", [c["network_96"][k]["flops"] / 1e9 for k in ("plain", "malenia")],
                       ["plain nnU-Net", "MaleniaNet"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (title, ys, labels) in zip(axes, panels):
        ax.bar(range(len(ys)), ys, color=[f"C{i}" for i in range(len(ys))])
        ax.set_xticks(range(len(ys)), [_title(l) if l in r["arms"] else l for l in labels], rotation=30,
                      ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"Cost ({r['profile']} profile, {r['hardware']['gpu'] or r['hardware']['cpu']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "cost.png", dpi=110)
    plt.close(fig)
    files.append("cost.png")
    files.append(plot_learning_curves(r, out, plt))
    return files


def plot_learning_curves(r: dict, out: Path, plt) -> str:
    """Per arm: nnU-Net's validation pseudo-Dice (mean over labels, and its EMA) on top, the training losses below
    (train/val loss and, for Malenia, the named losses of Eq. 6), against training iterations."""
    train = r["cost"]["train"]
    fig, axes = plt.subplots(2, len(train), figsize=(4 * len(train), 6.5), squeeze=False, sharex="col")
    for col, (arm, t) in enumerate(train.items()):
        # benchmark.json stores NaN (an epoch whose validation saw no foreground) as null
        curves = {k: [math.nan if v is None else v for v in vs] for k, vs in t["curves"].items()}
        per_epoch = t["iterations_per_epoch"]
        iterations = [per_epoch * (e + 1) for e in range(t["epochs"])]
        top, bottom = axes[0][col], axes[1][col]
        for key, label in (("mean_fg_dice", "pseudo-Dice"), ("ema_fg_dice", "EMA")):
            if key in curves:
                top.plot(iterations[:len(curves[key])], curves[key], label=label)
        top.set_ylim(0, 1)
        top.set_title(_title(arm), fontsize=9)
        top.legend(fontsize=7)
        for key, values in curves.items():
            if key in ("mean_fg_dice", "ema_fg_dice"):
                continue
            bottom.plot(iterations[:len(values)], values, label=key.split("/")[-1], linewidth=1)
        bottom.set_xlabel("iteration")
        bottom.legend(fontsize=6, ncol=2)
    axes[0][0].set_ylabel("validation pseudo-Dice")
    axes[1][0].set_ylabel("loss")
    fig.suptitle(f"Learning curves ({r['profile']} profile)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    return "learning_curves.png"


def write_report(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    plots = plot(result, out)
    (out / "benchmark.md").write_text(markdown(result, plots))
