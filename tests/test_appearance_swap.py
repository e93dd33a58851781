"""The appearance swap repaints lesions with another disease's statistics and moves exactly the density texts."""
import pytest
import torch

from nnunetv2_malenia.text_bank.bank import BANK_ASPECTS
from nnunetv2_malenia.training.appearance_swap import swap_lesion_appearance

ASPECT_OF_ROW = ["location", "density", "density", "density_variation", "specific_features", "specific_features",
                 "location", "organ"]                                    # R = 8 bank rows


def _batch():
    """Two samples of 1 channel, 8^3; sample 0: a dark lesion (label 1) and an organ (label 3); sample 1: a bright
    lesion (label 2)."""
    data = torch.zeros(2, 1, 8, 8, 8)
    masks0 = torch.zeros(2, 8, 8, 8, dtype=torch.bool)
    masks0[0, :2, :2, :2] = True                                           # lesion, label 1
    masks0[1, 4:, 4:, 4:] = True                                           # organ, label 3
    masks1 = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    masks1[0, 2:5, 2:5, 2:5] = True                                        # lesion, label 2
    data[0, 0][masks0[0]] = torch.linspace(-2.0, -1.0, 8)                  # mean -1.5
    data[0, 0][masks0[1]] = 0.3
    data[1, 0][masks1[0]] = torch.linspace(1.0, 3.0, 27)                   # mean 2, wider spread
    #                          loc  d0     d1     var    sf0    sf1    loc2   organ
    pos0 = torch.tensor([[True, True, False, True, True, False, False, False],
                         [False, False, False, False, False, False, False, True]])
    pos1 = torch.tensor([[False, False, True, False, False, True, True, False]])
    targets = [{"masks": masks0, "labels": torch.tensor([1, 3]), "positives": pos0, "paragraph": torch.tensor([9, -1])},
               {"masks": masks1, "labels": torch.tensor([2]), "positives": pos1, "paragraph": torch.tensor([10])}]
    row_aspect = torch.tensor([BANK_ASPECTS.index(a) for a in ASPECT_OF_ROW])
    return data, targets, row_aspect


def test_every_lesion_takes_the_other_lesions_statistics_and_density_texts():
    data, targets, row_aspect = _batch()
    before = data.clone()
    lesion0, lesion1 = targets[0]["masks"][0], targets[1]["masks"][0]
    stats0 = (before[0, 0][lesion0].mean(), before[0, 0][lesion0].std(unbiased=False))
    stats1 = (before[1, 0][lesion1].mean(), before[1, 0][lesion1].std(unbiased=False))
    assert swap_lesion_appearance(data, targets, [1, 2], row_aspect, probability=1.0) == 2
    # each lesion now has the other's original mean and std; its texture order is kept
    assert torch.isclose(data[0, 0][lesion0].mean(), stats1[0]) and torch.isclose(
        data[0, 0][lesion0].std(unbiased=False), stats1[1])
    assert torch.isclose(data[1, 0][lesion1].mean(), stats0[0]) and torch.isclose(
        data[1, 0][lesion1].std(unbiased=False), stats0[1])
    assert torch.equal(torch.argsort(data[0, 0][lesion0]), torch.argsort(before[0, 0][lesion0]))
    # nothing outside the lesions moved (the organ, the background)
    outside = ~(lesion0 | lesion1)
    assert torch.equal(data[0, 0][~lesion0], before[0, 0][~lesion0]) and torch.equal(
        data[1, 0][~lesion1], before[1, 0][~lesion1]) and outside.any()
    # density and density variation are the donor's, specific features gone, location and organ rows kept
    assert targets[0]["positives"][0].tolist() == [True, False, True, False, False, False, False, False]
    assert targets[1]["positives"][0].tolist() == [False, True, False, True, False, False, True, False]
    assert targets[0]["positives"][1].tolist() == [False] * 7 + [True]         # the organ is never touched
    assert targets[0]["paragraph"].tolist() == [-1, -1] and targets[1]["paragraph"].tolist() == [-1]


def test_no_swap_without_a_second_disease_or_at_probability_zero():
    data, targets, row_aspect = _batch()
    before, positives = data.clone(), [t["positives"].clone() for t in targets]
    assert swap_lesion_appearance(data, targets, [1, 2], row_aspect, probability=0.0) == 0
    targets[1]["labels"][0] = 1                                            # both lesions one disease now
    assert swap_lesion_appearance(data, targets, [1, 2], row_aspect, probability=1.0) == 0
    assert torch.equal(data, before) and all(torch.equal(t["positives"], p) for t, p in zip(targets, positives))
    with pytest.raises(AssertionError, match="probability"):
        swap_lesion_appearance(data, targets, [1, 2], row_aspect, probability=1.5)


def test_swap_probability_is_per_lesion():
    generator = torch.Generator().manual_seed(0)
    counts = []
    for _ in range(200):
        data, targets, row_aspect = _batch()
        counts.append(swap_lesion_appearance(data, targets, [1, 2], row_aspect, 0.5, generator=generator))
    assert 0.8 < sum(counts) / len(counts) < 1.2                           # 2 lesions x 0.5
