"""The data protocol: disjoint, stratified, seeded splits."""

import pytest
import torch

from infaug.data.splits import make_splits, stratified_sample


def _labels():
    # 10 classes of unequal size, shuffled
    labels = torch.cat([torch.full((100 + 10 * k,), k) for k in range(10)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def test_splits_are_disjoint_and_cover_the_pool():
    labels = _labels()
    s = make_splits(labels, labelled=200, validation=50, test=300, seed=3)
    parts = [s.train, s.validation, s.unlabelled, s.test]
    joined = torch.cat(parts)
    assert len(joined) == len(labels) and len(torch.unique(joined)) == len(labels)  # disjoint, complete
    assert (len(s.train), len(s.validation), len(s.test)) == (150, 50, 300)
    assert set(s.encoder_train.tolist()).isdisjoint(s.encoder_holdout.tolist())
    assert sorted(s.encoder_train.tolist() + s.encoder_holdout.tolist()) == s.train.tolist()


def test_splits_are_stratified():
    labels = _labels()
    s = make_splits(labels, labelled=290, validation=145, test=0, seed=1)
    share = torch.bincount(labels, minlength=10).double() / len(labels)
    for part, size in ((s.validation, 145), (torch.cat([s.train, s.validation]), 290)):
        counts = torch.bincount(labels[part], minlength=10).double()
        assert (counts - share * size).abs().max() <= 1  # largest remainders: within one of the exact share


def test_splits_are_identical_for_the_same_seed_and_differ_across_seeds():
    labels = _labels()
    a, b, c = (make_splits(labels, labelled=100, validation=20, test=100, seed=s) for s in (5, 5, 6))
    assert a.record() == b.record()
    assert a.record()["train"]["sha256"] != c.record()["train"]["sha256"]


def test_official_test_set_and_limited_unlabelled():
    labels = _labels()
    s = make_splits(labels, labelled=100, validation=20, test=0, unlabelled=30, seed=0)
    assert s.test is None and len(s.unlabelled) == 30
    assert s.record()["test"]["source"] == "the official test set"


def test_bad_sizes_are_rejected():
    labels = _labels()
    with pytest.raises(ValueError, match="validation .* must be smaller than labelled"):
        make_splits(labels, labelled=10, validation=10)
    with pytest.raises(ValueError, match="exceed"):
        make_splits(labels, labelled=1000, validation=10, test=1000)
    with pytest.raises(ValueError, match="cannot draw"):
        stratified_sample(labels, torch.arange(5), 6, torch.Generator())
