"""Regenerate the "cvode" blocks of reference_spikes.json and livn/reference_spikes.json (next
to this script): the probe's and livn's extra cells' spike times from jNeuroML's NEURON export
under CVODE (tests/probe_references.py).

    python tests/data/ca1_probe/regenerate.py [--check]

~2 CPU minutes. It prints how far the new spike times are from the stored ones, then stores
them with the hash of the probe's files and the tools' versions. --check runs nothing: it says
whether the stored blocks belong to the current files and the installed tools (exit status 1
if not). Run it after changing a file of the probe or updating pyNeuroML or NEURON, then run
tests/test_neuroml_ca1.py.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from probe_references import EXTRA_REFERENCE, PROBE_REFERENCE, inputs_hash, regenerate, tools, write  # noqa: E402


def check() -> bool:
    fresh = True
    for path in (PROBE_REFERENCE, EXTRA_REFERENCE):
        stored = json.loads(path.read_text())
        same_inputs = stored["cvode"].get("inputs_sha256") == inputs_hash()
        same_tools = {k: stored["tools"].get(k) for k in tools()} == tools()
        fresh &= same_inputs and same_tools
        print(f"{path.relative_to(Path(__file__).parent)}: inputs {'current' if same_inputs else 'STALE'}, "
              f"tools {'as installed' if same_tools else 'OTHER than installed'} ({stored['tools']})")
    print(f"installed: {tools()}")
    return fresh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the stored blocks are current")
    if parser.parse_args().check:
        return 0 if check() else 1
    with tempfile.TemporaryDirectory(prefix="ca1_probe_") as root:
        print(f"running jNeuroML's exports in {root} ...", flush=True)
        new = regenerate(Path(root))
    for path, spikes in new.items():
        old = json.loads(path.read_text())["cvode"]["spikes_ms"]
        for cid, runs in spikes.items():
            before = old.get(cid)
            if before is None:
                print(f"{cid}: new ({[len(r) for r in runs]} spikes)")
            elif [len(r) for r in runs] != [len(r) for r in before]:
                print(f"{cid}: {[len(r) for r in before]} -> {[len(r) for r in runs]} spikes")
            else:
                worst = max((np.abs(np.subtract(a, b)).max() for a, b in zip(runs, before) if len(a)), default=0.0)
                print(f"{cid}: same counts, max |dt| {worst:.4f} ms")
        write(path, spikes)
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
