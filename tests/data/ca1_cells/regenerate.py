"""Regenerate reference_spikes.json (next to this script): the spike times of the 12 CA1 cells
from jNeuroML's NEURON export, made by tests/reference_cells.py's CA1 harness.

    python tests/data/ca1_cells/regenerate.py [--block fixed_step|cvode] [--check]

Without --block both blocks are rewritten: "fixed_step" (~5 min on 2 shared cores), then
"cvode" (about an hour: CVODE at 1e-9, three networks run one after the other). --check runs nothing: it says, per block, whether the stored references belong to
the current cell, channel and morphology files (their hash), and which versions of pyNeuroML,
jNeuroML and NEURON made them and are installed; exit status 1 if a block is missing or stale.
Run it after changing a cell or one of its channels, then check the new spike times (git diff)
and run tests/test_ca1_cells.py and tests/test_ca1_conformance.py.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from reference_cells import (CA1_AMPLITUDES, CA1_CVODE_TOL, CA1_REFERENCE, ca1_model_hash, ca1_steps,  # noqa: E402
                             versions, write_ca1_reference)

BLOCKS = ("fixed_step", "cvode")


def check() -> bool:
    """Print the state of each stored block; True if both belong to the current model files."""
    stored = json.loads(CA1_REFERENCE.read_text()) if CA1_REFERENCE.exists() else {}
    current = ca1_model_hash()
    fresh = True
    for block in BLOCKS:
        if block not in stored:
            print(f"{block}: missing")
            fresh = False
        else:
            same = stored[block]["model_sha256"] == current
            fresh &= same
            print(f"{block}: {'current' if same else 'STALE (made from other model files)'}")
    print(f"model_sha256 of the current files: {current}")
    print(f"made with: {stored.get('versions')}")
    print(f"installed: {versions()}")
    return fresh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", choices=BLOCKS, help="rewrite only this block (default: both)")
    parser.add_argument("--check", action="store_true", help="only report whether the stored blocks are current")
    args = parser.parse_args()
    if args.check:
        return 0 if check() else 1
    for block in (args.block,) if args.block else BLOCKS:
        with tempfile.TemporaryDirectory(prefix=f"ca1_{block}_") as root:
            print(f"{block}: running jNeuroML's export in {root} ...", flush=True)
            runs = ca1_steps(Path(root), CA1_AMPLITUDES, cvode_tol=CA1_CVODE_TOL if block == "cvode" else None)
        write_ca1_reference(block, runs)
        print(f"{block}: written to {CA1_REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
