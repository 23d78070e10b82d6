"""The counter-based normal numbers shared by the simulator targets (livn.targets.gid_normal)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from livn.targets.gid_normal import gid_normal


def test_numbers_are_standard_normal_and_independent():
    steps = np.arange(200_000)
    z = gid_normal(7, 123, 0, steps)
    assert abs(z.mean()) < 0.01
    assert z.std() == pytest.approx(1.0, abs=0.01)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the two numbers of a Box–Muller pair, and consecutive pairs, are uncorrelated
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 0.01
    assert abs(np.corrcoef(z[:-2], z[2:])[0, 1]) < 0.01
    # streams of neighbouring gids, kinds and seeds are uncorrelated too
    for other in (gid_normal(7, 124, 0, steps), gid_normal(7, 123, 1, steps), gid_normal(8, 123, 0, steps)):
        assert abs(np.corrcoef(z, other)[0, 1]) < 0.01


def test_a_number_depends_only_on_its_four_integers():
    gids = np.arange(50)[:, None]
    steps = np.arange(30)[None, :]
    table = gid_normal(3, gids, 1, steps)
    assert table.shape == (50, 30)
    assert table[17, 11] == gid_normal(3, 17, 1, 11)
    assert np.array_equal(table[10:20], gid_normal(3, gids[10:20], 1, steps))
    assert len(np.unique(table)) == table.size
