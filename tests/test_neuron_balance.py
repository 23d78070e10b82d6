"""Cells to MPI ranks by compartment count (livn/targets/neuron/balance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from livn.targets.neuron.balance import assign, loads


def test_equal_costs_are_dealt_round_robin():
    np.testing.assert_array_equal(assign(np.ones(7), 3), np.arange(7) % 3)


@pytest.mark.parametrize("ranks", [1, 2, 3, 8])
def test_lpt_stays_within_four_thirds_of_the_lower_bound(ranks):
    """CA1-like mixture (69-compartment pyramidal cells, 20-80-compartment interneurons): the
    heaviest rank carries at most 4/3 of the optimum (bounded below by the mean and the largest
    cell), where gid % ranks can do far worse."""
    rng = np.random.default_rng(ranks)
    costs = np.concatenate([np.full(90, 69.0), rng.integers(20, 80, 16).astype(float)])
    costs[::ranks] += 200.0  # every ranks-th gid heavy: round-robin puts them all on rank 0
    owner = assign(costs, ranks)
    per_rank = loads(costs, owner, ranks)
    assert per_rank.sum() == costs.sum() and set(owner.tolist()) <= set(range(ranks))
    bound = max(costs.sum() / ranks, costs.max())
    assert per_rank.max() <= 4 / 3 * bound
    if ranks > 1:
        round_robin = loads(costs, np.arange(len(costs)) % ranks, ranks)
        assert per_rank.max() < round_robin.max()
