import math

import pytest

from repro.facts.subset_sampler import sample_subsets


def test_distinct_sorted_in_range_and_deterministic():
    a = sample_subsets(12, 4, 15, seed=1, base="b")
    assert a == sample_subsets(12, 4, 15, seed=1, base="b")
    assert len(a) == 15 and len(set(a)) == 15
    for subset in a:
        assert list(subset) == sorted(subset) and len(set(subset)) == 4
        assert all(1 <= i <= 12 for i in subset)


def test_streams_independent_of_other_sizes_and_bases():
    assert sample_subsets(12, 2, 15, seed=3, base="x") != sample_subsets(12, 2, 15, seed=4, base="x")
    assert sample_subsets(12, 2, 15, seed=3, base="x") != sample_subsets(12, 2, 15, seed=3, base="y")


def test_full_set_and_small_pools_return_every_subset():
    assert sample_subsets(12, 12, 15, seed=0, base="b") == [tuple(range(1, 13))]
    assert len(sample_subsets(6, 4, 30, seed=0, base="b")) == math.comb(6, 4)


def test_roughly_uniform():
    # Each checkpoint should appear in about n/N of the subsets over many draws.
    counts = [0] * 12
    for seed in range(200):
        for subset in sample_subsets(12, 4, 15, seed=seed, base="b"):
            for i in subset:
                counts[i - 1] += 1
    expected = 200 * 15 * 4 / 12
    assert all(abs(c - expected) / expected < 0.1 for c in counts)


def test_bad_sizes():
    with pytest.raises(ValueError):
        sample_subsets(5, 6, 1, seed=0, base="b")
