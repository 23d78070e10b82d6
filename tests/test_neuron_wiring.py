"""NetCons of the NEURON target (livn/targets/neuron/wiring.py): connections that add linearly
on one point process share a NetCon carrying their summed weight."""

from __future__ import annotations

import numpy as np
import pytest

from livn.targets.neuron.wiring import _unique_rows, compartments


@pytest.mark.parametrize("high", [[5, 300, 7, 3], [2**40, 2**40, 3, 2**30]], ids=["small", "overflowing"])
@pytest.mark.parametrize("rows", [0, 1, 7, 20_000])
def test_unique_rows_equals_numpys(rows, high):
    """The packed sort gives numpy's distinct rows and inverse, also when the columns' ranges
    multiply beyond int64 (renumbering on the way)."""
    keys = np.random.default_rng(rows).integers(0, high, size=(rows, 4))
    unique, index = _unique_rows(keys)
    if rows == 0:
        assert unique.shape == (0, 4) and len(index) == 0
        return
    want, inverse = np.unique(keys, axis=0, return_inverse=True)
    np.testing.assert_array_equal(unique, want)
    np.testing.assert_array_equal(index, inverse.ravel())
    np.testing.assert_array_equal(unique[index], keys)


def test_connections_sharing_source_point_delay_and_group_share_one_netcon(monkeypatch):
    """EI2 on NEURON, wired in blocks of 7 cells: one NetCon per distinct (source, target,
    synapse, compartment, delay, weight group), each with the sum of its connections' weights."""
    from livn.env import make
    from livn.targets.neuron import network

    monkeypatch.setattr(network, "CONNECT_BLOCK", 7)
    env = make("EI2", backend="neuron")
    try:
        net = env.simulation.network
        wiring = net._wiring
        conn = net.model.afferent(sorted(net.cells))
        compartment = np.array([compartments(net.cells[t].ir, np.array([s]), np.array([x]))[0]
                                for t, s, x in zip(conn.target.tolist(), conn.section.tolist(), conn.x.tolist())])
        keys = np.stack([conn.source, conn.target, conn.synapse, compartment, conn.group,
                         conn.delay.view(np.int64)], axis=1)
        distinct, index = np.unique(keys, axis=0, return_inverse=True)
        assert wiring.netcons.count() == len(distinct) <= len(conn.source)
        weights = net.model.conductance_scale(net.params)[conn.group] * conn.relative
        want = np.bincount(index.ravel(), weights=weights)
        got_keys = np.stack([wiring.source, wiring.target, wiring.point_keys[wiring.point, 1],
                             wiring.point_keys[wiring.point, 2], wiring.group], axis=1)
        got = np.array([nc.weight[0] for nc in wiring.netcons])
        order = np.lexsort(got_keys.T[::-1])
        np.testing.assert_array_equal(got_keys[order], distinct[:, :5])  # EI2: one delay per pair
        np.testing.assert_allclose(got[order], want, rtol=1e-12)
    finally:
        env.close()
