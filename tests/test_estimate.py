"""Build estimates (livn.build.estimate) against what the builder makes, and the refusal of
builds that do not fit, with the figures and a scale that fits."""

from pathlib import Path

import numpy as np
import pytest

from livn.build import build_circuit
from livn.build import circuit as circuit_module
from livn.build.estimate import estimate
from livn.spec import SpecError, load_spec
from livn.system import System

SPEC = Path(__file__).parent / "data" / "ca1_layers" / "CA1_layers.yaml"


@pytest.mark.parametrize("scale", [0.002, 0.005])
def test_estimated_edges_match_the_build(scale, tmp_path):
    spec = load_spec(SPEC, scale)
    built = System(build_circuit(spec, tmp_path / "c"))
    edges = sum(pop.size for pop in built.circuit.edges.values())
    assert edges == pytest.approx(estimate(spec).edges, rel=0.02)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert on_disk == pytest.approx(estimate(spec).disk_bytes, rel=0.35)


def test_a_build_that_does_not_fit_is_refused_with_a_scale_that_does(tmp_path, monkeypatch):
    spec = load_spec(SPEC)
    need = estimate(spec).disk_bytes
    monkeypatch.setattr(circuit_module, "free_disk", lambda output: need / 100)
    with pytest.raises(SpecError) as err:
        build_circuit(spec, tmp_path / "full")
    message = err.value.problems[0].message
    assert "345970 + 494700 input cells" in message and "free at" in message
    assert "scale=0.008 fits here" in message  # 0.8 x 1/100 of the disk, rounded down
    assert not (tmp_path / "full").exists()
