"""Fuzzing the reader of specs and NeuroML files through the ``livn`` command.

Copies of the shipped specs are mutated (deleted lines and attributes, values of another type,
other units, NaN/inf/huge numbers, huge counts, duplicate keys, YAML alias bombs, deep nesting,
bytes that are not UTF-8, empty or truncated files) and ``livn validate`` is run on EI1 (10
neurons) as a user would, in a subprocess with a time limit and a cap on its address space.
The contract:

* ``livn validate`` either accepts, and then ``livn build`` succeeds (and ``livn validate
  --target neuron --target brian2`` answers without a traceback), or it refuses with one line
  per problem (``<file>[:<line>]: error: ...``) and a summary line (``<spec>: N error(s)``);
* never a traceback, a hang (``TIMEOUT`` per command) or more memory than ``MEMORY_LIMIT``.

The mutations are drawn from ``random.Random`` with a fixed seed per case, so every case is the
same on every run and is its own test (``-k 'fuzz and 17'`` re-runs one; a failure prints the
mutation and the folder holding the mutated files). The fast part runs ``FAST_CASES`` cases;
the slow one (``-m slow``) ``SLOW_CASES`` others. ``test_known_bad`` is a table of specific
inputs, each with the message livn should give.
"""

from __future__ import annotations

import functools
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from conftest import LIVN
from livn.neuroml.reader import NEUROML_UNITS, NeuroMLError, quantity
from livn.resources import resource_dir
from livn.spec.units import UNITS, UnitError, parse_quantity

TIMEOUT = 60.0  # s, per livn command
MEMORY_LIMIT = 3 * 2**30  # bytes of address space per livn command (RLIMIT_AS)
FAST_CASES = 25
SLOW_CASES = 150
SPEC = "EI1.yaml"


# -- running livn ---------------------------------------------------------------------------

@dataclass
class Run:
    """One ``livn`` command: what it printed, how it ended, what it cost."""

    args: tuple
    code: int | None  # exit status; -N if killed by signal N; None if stopped at the time limit
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float

    @property
    def timed_out(self) -> bool:
        return self.code is None

    def describe(self) -> str:
        lines = self.stderr.splitlines()
        if "Traceback" in self.stderr:  # the first lines are click's; the last ones say what broke
            lines = lines[:1] + ["..."] + lines[-5:] if len(lines) > 8 else lines
        head = "\n".join(f"    {line}" for line in lines[:8])
        more = len(lines) - 8
        end = "timed out" if self.timed_out else f"exit {self.code}"
        return (f"  $ livn {' '.join(map(str, self.args))}\n  -> {end}, {self.seconds:.1f} s, "
                f"{self.max_rss_mb:.0f} MB peak\n  stdout: {self.stdout.strip()[:300]!r}\n  stderr:\n{head}"
                + (f"\n    ... ({more} more lines)" if more > 0 else ""))


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def livn(*args, cwd) -> Run:
    """Run ``livn *args`` in ``cwd`` with the time limit and memory cap; never raises on its outcome."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("LIVN_DEBUG", None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([LIVN, *map(str, args)], stdout=out, stderr=err, cwd=cwd, env=env,
                                preexec_fn=_limit_memory, start_new_session=True)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > TIMEOUT:
                os.killpg(proc.pid, signal.SIGKILL)  # the session started for this command
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Run(args, None if timed_out else proc.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"), seconds, usage.ru_maxrss / 1024)


#: ``<file>[:<line>]: error: <message>`` (or warning), as livn writes one problem
PROBLEM = re.compile(r"^\S.*?(?::\d+)?: (?:error|warning): \S")
#: ``<spec>: N error(s)`` after ``livn validate``; ``error: ...`` after the other commands
SUMMARY = re.compile(r"^(?:\S.*: \d+ error\(s\)|error: \S.*)$")


def contract(run: Run, refused_ok: bool = True) -> list[str]:
    """What ``run`` did wrong (empty if nothing): a traceback, a hang, a crash, or a refusal
    whose stderr is not one problem per line."""
    wrong = []
    if run.timed_out:
        wrong.append(f"no answer within {TIMEOUT:.0f} s")
    if "Traceback" in run.stderr or "Traceback" in run.stdout:
        wrong.append("a traceback")
    if run.code is not None and run.code not in (0, 1):
        wrong.append(f"exit status {run.code}" + (" (killed by a signal)" if run.code < 0 else ""))
    if run.code == 1:
        if not refused_ok:
            wrong.append("refused")
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        odd = [line for line in lines if not (PROBLEM.match(line) or SUMMARY.match(line))]
        if odd and "Traceback" not in run.stderr:
            wrong.append(f"{len(odd)} stderr line(s) not a one-line problem report, e.g. {odd[0][:200]!r}")
        if not any(PROBLEM.match(line) or line.startswith("error: ") for line in lines) and "Traceback" not in run.stderr:
            wrong.append("refused without naming a problem")
    return wrong


def check_contract(folder: Path, what: str) -> tuple[Run, list[str]]:
    """Validate ``folder``/EI1.yaml; if accepted, build it and check it against the targets.
    Returns the validate run and everything that broke the contract, with each command's output."""
    spec = folder / SPEC
    cwd = folder.parent
    validate = livn("validate", spec.relative_to(cwd), cwd=cwd)
    runs, wrong = [validate], contract(validate)
    if validate.code == 0:
        if "OK" not in validate.stdout:
            wrong.append("exit 0 without 'OK'")
        circuit = cwd / f"circuit-{folder.name}"
        build = livn("build", spec.relative_to(cwd), "-o", circuit.relative_to(cwd), cwd=cwd)
        runs.append(build)
        wrong += [f"build after an accepted validate: {w}" for w in contract(build, refused_ok=False)]
        if build.code == 0 and not (circuit / "circuit_config.json").is_file():
            wrong.append("build exited 0 without writing circuit_config.json")
        targets = livn("validate", spec.relative_to(cwd), "--target", "neuron", "--target", "brian2", cwd=cwd)
        runs.append(targets)
        wrong += [f"validate --target: {w}" for w in contract(targets)]
    if wrong:
        wrong = [f"{what} (files in {folder}):", *(f"- {w}" for w in wrong), *(r.describe() for r in runs)]
    return validate, wrong


# -- mutations ------------------------------------------------------------------------------

@functools.cache
def referenced_files(folder: Path = resource_dir("specs")) -> list[str]:
    """EI1.yaml and the NeuroML files it reads (the cells' includes too), relative to the specs."""
    text = (folder / SPEC).read_text()
    files = {SPEC, *re.findall(r"\b((?:cells|synapses|noise)/[\w.]+\.nml)\b", text)}
    for cell in [f for f in files if f.startswith("cells/")]:
        for href in re.findall(r'<include href="([^"]+)"', (folder / cell).read_text()):
            files.add(os.path.normpath(os.path.join(os.path.dirname(cell), href)))
    return sorted(files)


SPECIAL_YAML_NUMBERS = [".nan", ".NaN", "nan", ".inf", "-.inf", "1e999", "1.0e308", "-1.0e308", "1e308", "0",
                        "-1", "-0.0", "5e-324", "9223372036854775808", "1_000"]
SPECIAL_NML_NUMBERS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e308", "-1e308", "0", "-0", "-1",
                       "5e-324", "1e-320", "+.5", "1.", "0x10"]
OTHER_TYPES_YAML = ["42", "-3.5", "'some text'", "[1, 2, 3]", "[]", "{a: 1}", "{}", "true", "null", "''",
                    "2026-11-25", "[40 um, 40 um, 40 um]", "{gaussian: {sigma: 1 um}}"]
OTHER_TYPES_NML = ["abc", "", " ", "10", "1 2 3", "[1, 2]", "{a: 1}", "true", "None", "1,5mV", "mV", "5 mV",
                   "COMMENT", "1abc", "a b", "ä", "&amp;", "&lt;"]
YAML_UNITS = ["um", "µm", "mm", "m", "ms", "s", "uS", "nS", "mV", "V", "um/ms", "m/s", "ohm m", "ohm cm", "mM",
              "parsecs", "", "UM", "um um"]
NML_UNITS = ["mV", "V", "ms", "s", "per_ms", "Hz", "uS", "nS", "pS", "mS_per_cm2", "S_per_m2", "uF_per_cm2",
             "ohm_cm", "um", "mM", "nA", "parsecs", "", "MV", "mV_per_ms"]
HUGE_COUNTS = ["1000000000", "100000", "1000000000000", "9223372036854775807", "18446744073709551616",
               "1e9", "-10", "0", "1"]
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\x1b[2J"]

#: a scalar value in the YAML: after "key: ", "[" or ", " up to ",", "]", "}", " #" or the end of line
YAML_VALUE = re.compile(r"(?:(?<=: )|(?<=\[)|(?<=, ))((?:[^\s{}\[\],#:]|:(?! ))(?:[^{}\[\],#\n:]|:(?! ))*?)"
                        r"(?=\s*(?:[,}\]]|\s#|$))", re.M)
YAML_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
YAML_QUANTITY = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(\s*)(\S.*)$")
NML_ATTRIBUTE = re.compile(r'(?<=\s)([\w:]+)="([^"]*)"')
NML_QUANTITY = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([A-Za-z_][A-Za-z_0-9]*)?$")


def _pick_match(rng, pattern, text, accept=lambda m: True):
    """A random match of ``pattern`` outside YAML comments that ``accept`` accepts."""
    matches = [m for m in pattern.finditer(text)
               if "#" not in text[text.rfind("\n", 0, m.start()) + 1:m.start()] and accept(m)]
    return rng.choice(matches) if matches else None


def _splice(text, start, end, new):
    return text[:start] + new + text[end:]


def _content_lines(text):
    return [i for i, line in enumerate(text.split("\n")) if line.strip() and not line.lstrip().startswith("#")]


def alias_bomb(rng) -> str:
    """A flow sequence whose aliases expand to ``width ** depth`` values (a "billion laughs")."""
    width, depth = rng.choice([9, 10, 20]), rng.choice([6, 9, 12])
    parts = [f"&a0 [{', '.join(['lol'] * width)}]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    return f"[{', '.join(parts)}]"


def nesting(rng) -> str:
    n = rng.choice([1000, 20000, 100000])
    return rng.choice(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n, "[" * n])


def mutate_yaml(text: str, rng) -> tuple[str | bytes, str]:
    """One random mutation of a YAML spec: (new text or bytes, what was done)."""
    kind = rng.choice(["delete line", "other type", "other unit", "special number", "special number",
                       "huge count", "duplicate key", "alias bomb", "nesting", "bytes", "empty", "truncate",
                       "python tag", "tab indent"])
    lines = text.split("\n")
    if kind == "delete line":
        i = rng.choice(_content_lines(text))
        return "\n".join(lines[:i] + lines[i + 1:]), f"deleted line {i + 1}: {lines[i].strip()!r}"
    if kind == "duplicate key":
        i = rng.choice([i for i in _content_lines(text) if re.match(r"^\s*[^\s#-][^#]*:(\s|$)", lines[i])])
        copy = lines[i] if rng.random() < 0.5 else re.sub(r":\s.*$", ": 1", lines[i])
        return "\n".join(lines[:i + 1] + [copy] + lines[i + 1:]), f"line {i + 1} twice: {copy.strip()!r}"
    if kind == "huge count":
        key = rng.choice(["neurons", "neurons", "grid", "size", "seed"])
        value = rng.choice(HUGE_COUNTS)
        new = {"neurons": f"neurons: {value}", "grid": f"grid: [{value}, {value}]",
               "size": f"size: [{value} um, {value} um]", "seed": f"seed: {value}"}[key]
        old = {"neurons": r"neurons: \S+", "grid": r"grid: \S+", "size": r"size: \[[^\]]*\]",
               "seed": r"seed: \S+"}[key]
        return re.sub(old, new, text, count=1), f"{new!r}"
    if kind in ("bytes", "empty", "truncate"):
        data = text.encode()
        if kind == "empty":
            new = rng.choice([b"", b"\n", b"   \n\n", b"# only a comment\n", b"---\n", b"...\n"])
            return new, f"file replaced by {new!r}"
        at = rng.randrange(len(data))
        if kind == "truncate":
            return data[:at], f"truncated at byte {at}"
        bad = rng.choice(BAD_BYTES)
        return data[:at] + bad + data[at:], f"bytes {bad!r} inserted at byte {at}"
    if kind == "tab indent":
        i = rng.choice([i for i in _content_lines(text) if lines[i].startswith("  ")])
        lines[i] = "\t" + lines[i][2:]
        return "\n".join(lines), f"line {i + 1} indented with a tab"
    m = _pick_match(rng, YAML_VALUE, text)
    value = m.group(1)
    if kind == "other type":
        new = rng.choice([t for t in OTHER_TYPES_YAML if t != value])
    elif kind == "other unit":
        m = _pick_match(rng, YAML_VALUE, text, lambda m: YAML_QUANTITY.match(m.group(1))) or m
        value = m.group(1)
        q = YAML_QUANTITY.match(value)
        number, unit = (q.group(1), q.group(3)) if q else (value, "")
        new_unit = rng.choice([u for u in YAML_UNITS if u != unit])
        new = f"{number} {new_unit}".strip()
    elif kind == "special number":
        m = _pick_match(rng, YAML_VALUE, text, lambda m: YAML_NUMBER.match(m.group(1))) or m
        value = m.group(1)
        new = YAML_NUMBER.sub(rng.choice(SPECIAL_YAML_NUMBERS), value, count=1)
    elif kind == "alias bomb":
        new = alias_bomb(rng)
    elif kind == "nesting":
        new = nesting(rng)
    else:  # python tag
        new = rng.choice(["!!python/object/apply:os.system ['echo pwned']", "!!python/name:os.system",
                          "!custom 3", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]"])
    line = text.count("\n", 0, m.start()) + 1
    shown = new if len(new) < 80 else f"{new[:40]}...({len(new)} chars)"
    return _splice(text, m.start(1), m.end(1), new), f"{kind}: line {line}: {value!r} -> {shown!r}"


def mutate_nml(text: str, rng) -> tuple[str | bytes, str]:
    """One random mutation of a NeuroML file: (new text or bytes, what was done)."""
    kind = rng.choice(["delete line", "delete attribute", "delete attribute", "other type", "other unit",
                       "other unit", "special number", "special number", "duplicate line", "rename element",
                       "entity bomb", "nesting", "bytes", "empty", "truncate"])
    lines = text.split("\n")
    if kind in ("delete line", "duplicate line"):
        i = rng.choice([i for i, line in enumerate(lines) if line.strip()])
        new = lines[:i] + lines[i + 1:] if kind == "delete line" else lines[:i + 1] + [lines[i]] + lines[i + 1:]
        return "\n".join(new), f"{kind} {i + 1}: {lines[i].strip()[:100]!r}"
    if kind == "rename element":
        tags = sorted(set(re.findall(r"<([A-Za-z][\w]*)[\s>/]", text)) - {"neuroml"})
        tag = rng.choice(tags)
        new = rng.choice([tag + "Foo", tag.lower(), "ionChannelPassive", "ionChannelKS", "gateHHtauInf",
                          "gateFractional", "expThreeSynapse", "cell2CaPools", "channelDensityNernst"])
        out = re.sub(rf"<(/?){tag}(?=[\s>/])", rf"<\g<1>{new}", text)
        return out, f"element <{tag}> renamed <{new}>"
    if kind in ("bytes", "empty", "truncate"):
        data = text.encode()
        if kind == "empty":
            new = rng.choice([b"", b"\n", b'<?xml version="1.0" encoding="UTF-8"?>\n', b"<neuroml/>",
                              b'<neuroml xmlns="http://www.neuroml.org/schema/neuroml2"/>'])
            return new, f"file replaced by {new!r}"
        at = rng.randrange(len(data))
        if kind == "truncate":
            return data[:at], f"truncated at byte {at}"
        bad = rng.choice(BAD_BYTES)
        return data[:at] + bad + data[at:], f"bytes {bad!r} inserted at byte {at}"
    if kind == "entity bomb":
        depth = rng.choice([5, 10])
        decl = '<!ENTITY e0 "lollollollol">' + "".join(
            f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, depth))
        root = text.index("<neuroml")
        out = text[:root] + f"<!DOCTYPE neuroml [{decl}]>\n" + text[root:]
        m = _pick_match(rng, NML_ATTRIBUTE, out)
        return _splice(out, m.start(2), m.end(2), f"&e{depth - 1};"), f"entity bomb ({depth} levels) in {m.group(1)}="
    if kind == "nesting":
        n = rng.choice([300, 20000])
        at = text.index(">", text.index("<neuroml")) + 1
        return text[:at] + "<a>" * n + "</a>" * n + text[at:], f"{n} nested elements"
    if kind == "delete attribute":
        m = _pick_match(rng, NML_ATTRIBUTE, text, lambda m: not m.group(1).startswith(("xmlns", "xsi")))
        line = text.count("\n", 0, m.start()) + 1
        return _splice(text, m.start() - 1, m.end(), ""), f"line {line}: deleted {m.group(0)}"
    m = _pick_match(rng, NML_ATTRIBUTE, text, lambda m: not m.group(1).startswith(("xmlns", "xsi")))
    if kind == "other unit":
        m = _pick_match(rng, NML_ATTRIBUTE, text, lambda m: (q := NML_QUANTITY.match(m.group(2))) and q.group(2)) or m
        q = NML_QUANTITY.match(m.group(2))
        number, unit = (q.group(1), q.group(2) or "") if q else (m.group(2), "")
        new = number + rng.choice([u for u in NML_UNITS if u != unit])
    elif kind == "special number":
        m = _pick_match(rng, NML_ATTRIBUTE, text, lambda m: NML_QUANTITY.match(m.group(2))) or m
        new = YAML_NUMBER.sub(rng.choice(SPECIAL_NML_NUMBERS), m.group(2), count=1)
    else:  # other type
        new = rng.choice([t for t in OTHER_TYPES_NML if t != m.group(2)])
    line = text.count("\n", 0, m.start()) + 1
    return _splice(text, m.start(2), m.end(2), new), f"{kind}: line {line}: {m.group(1)}={m.group(2)!r} -> {new!r}"


def mutate(folder: Path, case: int) -> str:
    """Apply case ``case``'s mutations (one, sometimes two) to the specs in ``folder``; describe them."""
    rng = random.Random(f"livn-fuzz/{case}")
    files = referenced_files()
    done = []
    for _ in range(2 if rng.random() < 0.2 else 1):
        for _attempt in range(20):
            name = SPEC if rng.random() < 0.4 else rng.choice([f for f in files if f != SPEC])
            path = folder / name
            data = path.read_bytes()
            try:
                text = data.decode()
            except UnicodeDecodeError:  # an earlier mutation wrote bytes: mutate another file
                continue
            new, what = (mutate_yaml if name == SPEC else mutate_nml)(text, rng)
            new = new.encode() if isinstance(new, str) else new
            if new != data:
                path.write_bytes(new)
                done.append(f"{name}: {what}")
                break
    assert done, f"case {case}: no mutation changed anything"
    return "; ".join(done)


def copy_specs(root: Path, name: str = "specs") -> Path:
    folder = root / name
    shutil.copytree(resource_dir("specs"), folder)
    return folder


def fuzz_case(tmp_path, case):
    folder = copy_specs(tmp_path)
    what = f"case {case}: {mutate(folder, case)}"
    _, wrong = check_contract(folder, what)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("case", range(FAST_CASES))
def test_fuzz(tmp_path, case):
    fuzz_case(tmp_path, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", range(1000, 1000 + SLOW_CASES))
def test_fuzz_more(tmp_path, case):
    fuzz_case(tmp_path, case)


def test_mutations_are_deterministic(tmp_path):
    """The same case mutates the same way on every run (the fixed seed is the whole point)."""
    for case in range(40):
        a, b = copy_specs(tmp_path, f"{case}a"), copy_specs(tmp_path, f"{case}b")
        assert mutate(a, case) == mutate(b, case)
        for name in referenced_files():
            assert (a / name).read_bytes() == (b / name).read_bytes()


def test_unmutated_spec_passes(tmp_path):
    """The harness itself: the shipped EI1 satisfies the contract (validate, build, targets)."""
    validate, wrong = check_contract(copy_specs(tmp_path), "unmutated EI1")
    assert not wrong, "\n".join(wrong)
    assert validate.code == 0


# -- known bad inputs -----------------------------------------------------------------------

def _replace(old, new, count=1):
    def edit(data: bytes) -> bytes:
        out = data.replace(old.encode() if isinstance(old, str) else old,
                           new.encode() if isinstance(new, str) else new, count)
        assert out != data, f"{old!r} not found"
        return out
    return edit


def _rename(tag, new):
    """Rename element ``tag`` (its start and end tags) to ``new``."""
    def edit(data: bytes) -> bytes:
        return _replace(f"</{tag}>", f"</{new}>")(_replace(f"<{tag} ", f"<{new} ")(data))
    return edit


def _yaml_alias_bomb(data: bytes) -> bytes:
    parts = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return _replace("description: 10-neuron", f"description: [{', '.join(parts)}]\nx: 10-neuron")(data)


def _xml_entity_bomb(data: bytes) -> bytes:
    decl = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{f"&{chr(97 + i)};" * 10}">' for i in range(9))
    data = _replace("<neuroml", f"<!DOCTYPE neuroml [{decl}]>\n<neuroml")(data)
    return _replace("Ohmic leak", "&j;")(data)


def _custom_rate(value: str):
    """Na_RS's m forward rate as a custom LEMS ComponentType whose rate is ``value``."""
    escaped = value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    component_type = (f'<ComponentType name="Fuzz_rate" extends="baseVoltageDepRate"><Constant name="TIME_SCALE" '
                      f'dimension="time" value="1ms"/><Dynamics><DerivedVariable name="r" dimension="per_time" '
                      f'exposure="r" value="{escaped}"/></Dynamics></ComponentType>\n</neuroml>')

    def edit(data: bytes) -> bytes:
        data = _replace('<forwardRate type="HHExpLinearRate" rate="1.28per_ms" midpoint="-43.2mV" scale="4mV"/>',
                        '<forwardRate type="Fuzz_rate"/>')(data)
        return _replace("</neuroml>", component_type)(data)
    return edit


EXC, INH, LEAK, NA_RS, AMPA = ("cells/EXC.cell.nml", "cells/INH.cell.nml", "channels/Leak.channel.nml",
                               "channels/Na_RS.channel.nml", "synapses/AMPA.synapse.nml")
OK = 0

#: id -> (file, edit of its bytes, extra validate arguments, expected exit status, expected message fragment)
KNOWN_BAD = {
    # NeuroML quantities
    "erev seconds": (EXC, _replace('erev="-90mV"', 'erev="-90s"'), (), 1, "erev='-90s': expected a voltage"),
    "erev bare number": (EXC, _replace('erev="-90mV"', 'erev="-90"'), (), 1, "erev='-90': expected a voltage"),
    "erev text": (EXC, _replace('erev="-90mV"', 'erev="abc"'), (), 1, "erev='abc': expected a voltage"),
    "erev parsecs": (EXC, _replace('erev="-90mV"', 'erev="-90parsecs"'), (), 1, "expected a voltage"),
    "erev nanmV": (EXC, _replace('erev="-90mV"', 'erev="nanmV"'), (), 1, "erev='nanmV'"),
    "erev 1e999mV": (EXC, _replace('erev="-90mV"', 'erev="1e999mV"'), (), 1, "erev='1e999mV' is not finite"),
    "erev empty": (EXC, _replace('erev="-90mV"', 'erev=""'), (), 1, "erev='': expected a voltage"),
    "erev deleted": (EXC, _replace(' erev="50mV"', ""), (), 1, "erev"),
    "condDensity negative": (EXC, _replace('condDensity="56mS_per_cm2"', 'condDensity="-56mS_per_cm2"'), (), 1,
                             "condDensity"),
    "diameter zero": (EXC, _replace('diameter="6"', 'diameter="0"', 2), (), 1, "diameter"),
    "specificCapacitance zero": (EXC, _replace('value="1.0uF_per_cm2"', 'value="0uF_per_cm2"'), (), 1,
                                 "specificCapacitance must be positive"),
    "tauDecay equals tauRise": (AMPA, _replace('tauDecay="3ms"', 'tauDecay="0.5ms"'), (), 1,
                                "need 0 <= tauRise < tauDecay"),
    # NeuroML elements
    "ionChannelPassive leak": (LEAK, _rename("ionChannelHH", "ionChannelPassive"),
                               ("--target", "neuron", "--target", "brian2"), OK, "OK"),
    "unknown channel type": (LEAK, _rename("ionChannelHH", "ionChannelFoo"), (), 1, "ionChannelFoo"),
    "gate COMMENT validates": (NA_RS, _replace('gateHHrates id="m"', 'gateHHrates id="COMMENT"'), (), OK, "OK"),
    "gate COMMENT on neuron": (NA_RS, _replace('gateHHrates id="m"', 'gateHHrates id="COMMENT"'),
                               ("--target", "neuron"), 1, "'COMMENT' is an NMODL keyword"),
    "NeuroML empty": (INH, lambda data: b"", (), 1, "empty"),
    "NeuroML not UTF-8": (EXC, _replace("livn excitatory", b"livn \xff\xfe excitatory"), (), 1, "UTF-8"),
    "NeuroML entity bomb": (LEAK, _xml_entity_bomb, (), 1, "entity"),
    "NeuroML 20000 nested elements": (AMPA, _replace("<notes>AMPA", "<a>" * 20000 + "</a>" * 20000 + "<notes>AMPA"),
                                      (), 1, "depth"),
    # LEMS expressions of custom ComponentTypes (the restricted parser: nothing is eval-ed)
    "expression __import__": (NA_RS, _custom_rate("__import__('os').system('echo pwned') / TIME_SCALE"), (), 1,
                              "unexpected"),
    "expression attribute access": (NA_RS, _custom_rate("v.__class__ / TIME_SCALE"), (), 1, "unexpected '.__class"),
    "expression unknown name": (NA_RS, _custom_rate("os / TIME_SCALE"), (), 1, "'os', which is not defined"),
    "expression unknown function": (NA_RS, _custom_rate("system(v) / TIME_SCALE"), (), 1, "unknown function 'system'"),
    "expression wrong dimension": (NA_RS, _custom_rate("v / TIME_SCALE"), (), 1, "is declared per_time"),
    "expression valid": (NA_RS, _custom_rate("1 / TIME_SCALE"), ("--target", "neuron", "--target", "brian2"), 1,
                         "not translated by the Brian2 target"),
    # YAML values
    "cutoff nan": (SPEC, _replace("cutoff: 0.1", "cutoff: .nan"), (), 1,
                   "connectivity.kernel.gaussian.cutoff: expected a finite number"),
    "weight inf": (SPEC, _replace("EXC -> EXC.AMPA: ", "EXC -> EXC.AMPA: .inf  # "), (), 1,
                   "defaults.weights.EXC -> EXC.AMPA: expected a finite number"),
    "sigma 1e999 um": (SPEC, _replace("sigma: 200 um", "sigma: 1e999 um"), (), 1,
                       "connectivity.kernel.gaussian.sigma: expected a finite"),
    "sigma in mV": (SPEC, _replace("sigma: 200 um", "sigma: 200 mV"), (), 1, "expected a length"),
    "velocity without unit": (SPEC, _replace("velocity: 250 um/ms", "velocity: 250"), (), 1,
                              "connectivity.delay.velocity: expected a velocity"),
    "tau negative": (SPEC, _replace("tau: 2.728 ms", "tau: -1 ms"), (), 1, "expected a time > 0"),
    "pitch zero": (SPEC, _replace("pitch: 100 um", "pitch: 0 um"), (), 1, "mea.pitch"),
    "culture 1e308 um": (SPEC, _replace("size: [40 um, 40 um]", "size: [1e308 um, 1e308 um]"), (), 1, "culture.size"),
    "fraction 1e308": (SPEC, _replace("fraction: 0.8 ", "fraction: 1e308 "), (), 1, "populations.EXC.fraction"),
    "resistivity 1e308": (SPEC, _replace("resistivity: 3.5 ohm m", "resistivity: 1.0e308 ohm m"), (), 1,
                          "mea.resistivity"),
    # too large for this machine: validate refuses what build would refuse, naming the figures
    "neurons 100000 in 40 um": (SPEC, _replace("neurons: 10\n", "neurons: 100000\n"), (), 1, "error: building EI1"),
    "neurons 10**9": (SPEC, _replace("neurons: 10\n", "neurons: 1000000000\n"), (), 1, "error: building EI1"),
    "grid 100000 x 100000": (SPEC, _replace("grid: fit ", "grid: [100000, 100000] "), (), 1, "mea.grid"),
    # YAML structure
    "duplicate key": (SPEC, _replace("name: EI1\n", "name: EI1\nname: EI9\n"), (), 1, "duplicate key 'name'"),
    "nested aliases": (SPEC, _yaml_alias_bomb, (), 1, "aliases"),
    "20000 nested brackets": (SPEC, _replace("neurons: 10\n", f"neurons: {'[' * 20000}{']' * 20000}\n"), (), 1,
                              "nested too deeply"),
    "python tag": (SPEC, _replace("seed: 1\n", "seed: !!python/object/apply:os.system ['echo pwned']\n"), (), 1,
                   "not allowed"),
    "YAML not UTF-8": (SPEC, _replace("80 % EXC", b"80 \xff EXC"), (), 1, "not UTF-8"),
    "YAML empty": (SPEC, lambda data: b"", (), 1, "empty"),
}


@pytest.mark.parametrize("case", list(KNOWN_BAD))
def test_known_bad(tmp_path, case):
    name, edit, args, code, fragment = KNOWN_BAD[case]
    folder = copy_specs(tmp_path)
    path = folder / name
    path.write_bytes(edit(path.read_bytes()))
    run = livn("validate", folder.relative_to(tmp_path) / SPEC, *args, cwd=tmp_path)
    wrong = contract(run)
    if run.code != code:
        wrong.append(f"expected exit status {code}")
    if fragment not in run.stdout + run.stderr:
        wrong.append(f"expected {fragment!r} in the output")
    if code == 1 and run.code == 1 and not any(fragment in line and PROBLEM.match(line)
                                                 for line in run.stderr.splitlines()):
        wrong.append(f"{fragment!r} is not in a '<file>[:<line>]: error: ...' line")
    if code == OK and run.code == OK:
        _, more = check_contract(folder, case)  # accepted: the build must succeed too
        wrong += more
    assert not wrong, f"{case}: {name} edited\n" + "\n".join(f"- {w}" for w in wrong) + "\n" + run.describe()


# -- the quantity parsers, in process (cheap, so many more inputs) --------------------------

NUMBER_TEXT = st.one_of(
    st.floats().map(repr), st.floats().map(str), st.integers().map(str),
    st.sampled_from(["nan", ".nan", "inf", "-inf", "1e999", "-1e999", "1e308", "5e-324", "1e-400", "0", "-0",
                     "1_000", "0x10", "1.", ".5", "+.5", "1e", "e5", "--1", "١٢"]))
UNIT_TEXT = st.one_of(
    st.sampled_from(sorted({u for units in UNITS.values() for u in units}
                           | {u for units in NEUROML_UNITS.values() for u in units})),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=8))
QUANTITY_TEXT = st.one_of(
    st.builds(lambda n, s, u: f"{n}{s}{u}", NUMBER_TEXT, st.sampled_from(["", " ", "  ", "\u00a0"]), UNIT_TEXT),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
FUZZ = settings(derandomize=True, max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _quantity_of(units):
    """Text that is mostly a number and one of ``units`` (else anything)."""
    own = st.builds(lambda n, s, u: f"{n}{s}{u}", NUMBER_TEXT, st.sampled_from(["", " ", "  "]),
                    st.sampled_from(sorted(units)))
    return st.one_of(own, own, QUANTITY_TEXT)


@FUZZ
@given(data=st.data(), dimension=st.sampled_from(sorted(UNITS)))
def test_spec_quantities_are_finite_or_refused(data, dimension):
    """A YAML quantity reads as a finite number, or is refused with a one-line message."""
    text = data.draw(st.one_of(_quantity_of(UNITS[dimension]), st.integers(), st.floats(), st.none(),
                               st.lists(st.integers(), max_size=2)))
    try:
        value = parse_quantity(text, dimension)
    except UnitError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert math.isfinite(value), f"{text!r} as a {dimension} read as {value}"


@FUZZ
@given(data=st.data(), dimension=st.sampled_from(sorted(NEUROML_UNITS)))
def test_neuroml_quantities_are_finite_or_refused(data, dimension):
    """A NeuroML attribute reads as a finite number, or is refused naming the attribute."""
    text = data.draw(_quantity_of(NEUROML_UNITS[dimension]))
    element = etree.fromstring("<channelDensity/>")
    element.set("erev", text)
    try:
        value = quantity(element, "erev", dimension)
    except NeuroMLError as err:
        assert len(err.problems) == 1 and "erev" in err.problems[0][-1] and "\n" not in err.problems[0][-1]
        return
    assert math.isfinite(value), f"{text!r} as a {dimension} read as {value}"


# -- the LEMS expression parser, in process ----------------------------------------------------

EXPRESSION_PIECES = st.sampled_from(
    ["v", "caConc", "temperature", "x", "__import__", "os", "exp", "log", "sqrt", "abs", "pow", "eval", "(", ")", "+",
     "-", "*", "/", "^", "**", ".", ",", "'", '"', "[", "]", ":", ";", "=", "==", ".gt.", ".lt.", ".geq.", ".leq.",
     ".eq.", ".neq.", ".and.", ".or.", ".not.", "0", "1", "2.5", ".5", "1e-3", "1e999", "nan", " ", "\\", "__class__",
     "lambda", "{", "}"])
EXPRESSION_TEXT = st.one_of(st.lists(EXPRESSION_PIECES, max_size=25).map("".join),
                            st.lists(EXPRESSION_PIECES, max_size=25).map(" ".join),
                            st.text(max_size=40))


@FUZZ
@given(text=EXPRESSION_TEXT)
def test_expressions_parse_or_are_refused(text):
    """Any text is a tree of the restricted language (numbers, known functions, names and
    operators only; its NMODL uses nothing else) or an ExpressionError with a one-line message."""
    from livn.neuroml import lems

    try:
        tree = lems.parse(text)
    except lems.ExpressionError as err:
        assert str(err) and "\n" not in str(err)
        return
    names = lems.names_in(tree)
    dims = {n: lems.NONE for n in names}
    try:
        kind = lems.dimension_of(tree, dims)
    except lems.ExpressionError as err:
        assert str(err) and "\n" not in str(err)
        return
    try:
        code = lems.nmodl(tree, {n: f"l_{n}" for n in names})
    except lems.ExpressionError:  # a literal NMODL cannot hold (1e999)
        return
    assert re.fullmatch(r"[\w .()+\-*/,<>=!&|]*", code), code
    assert not ({"__import__", "eval", "os", "lambda"} & {w for w in re.findall(r"[A-Za-z_]\w*", code)
                                                          if not w.startswith("l_")})
    if kind != "bool":
        import numpy as np

        with np.errstate(all="ignore"):
            lems.evaluate(tree, {n: np.linspace(-1, 1, 3) for n in names})
