import numpy as np

from build_models.sources.dataset import SplitConfig, make_splits, split_hash, split_record


def test_split_is_deterministic_and_disjoint(dataset):
    first = make_splits(dataset.labels, SplitConfig())
    second = make_splits(dataset.labels, SplitConfig())
    for a, b in zip(first.as_dict().values(), second.as_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b)
    all_rows = np.concatenate(list(first.as_dict().values()))
    assert len(np.unique(all_rows)) == len(all_rows) == len(dataset)


def test_split_is_stratified_with_a_large_test_split(dataset):
    splits = make_splits(dataset.labels, SplitConfig())
    assert len(splits.test) >= 2000
    overall = dataset.labels.mean()
    for rows in splits.as_dict().values():
        assert abs(dataset.labels[rows].mean() - overall) < 0.005


def test_other_seed_gives_other_split_and_hash(dataset):
    a = make_splits(dataset.labels, SplitConfig(seed=1))
    b = make_splits(dataset.labels, SplitConfig(seed=2))
    assert split_hash(dataset.ids, a.test) != split_hash(dataset.ids, b.test)


def test_limit_gives_balanced_subset(dataset):
    config = SplitConfig(limit=400, val_fraction=0.15, test_fraction=0.25)
    splits = make_splits(dataset.labels, config)
    record = split_record(dataset, splits, config)
    assert record["test"]["count"] + record["val"]["count"] + record["train"]["count"] == 400
    assert record["test"]["class_counts"] == [50, 50]
