#!/usr/bin/env python
"""Print the markdown tables of a pytest-benchmark JSON file written by ``benchmarks/``.

Usage::

    python -m pytest benchmarks/ --benchmark-enable --benchmark-json=bench.json -q
    python scripts/bench_table.py bench.json

One table per benchmark group (``label n=250``, ``decode n=2000``, ...), rows fastest first:
the implementation, its median time, how many times faster dwd_fast is than it (its median over
dwd_fast's), its time as a multiple of the numpy floor of the group (one ``energy > 7`` pass over the
uint8 page) where the group has one, the number of rounds, whether its result was checked correct,
and the system load average when it started (above the core count: other processes competed). A
header gives the machine, the library versions and the thread settings of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

FLOOR_NAME = "numpy energy > 7 (floor)"  # as in benchmarks/conftest.py


def machine_line(data):
    """One line: CPU, cores, versions and threads of the run (as recorded by benchmarks/conftest.py)."""
    facts = data.get("machine_info", {}).get("dwd_fast_bench")
    if facts is None:  # older file or another conftest: use a benchmark's extra_info, else this machine
        facts = next((b["extra_info"] for b in data.get("benchmarks", []) if "cpu_model" in b["extra_info"]), {})
    cpu = facts.get("cpu_model") or data.get("machine_info", {}).get("cpu", {}).get("brand_raw") or "unknown CPU"
    cores = facts.get("cores") or os.cpu_count()
    versions = ", ".join(f"{name} {facts[key]}" for name, key in (
        ("Python", "python"), ("numpy", "numpy"), ("scikit-image", "scikit-image"), ("SciPy", "scipy"),
        ("OpenCV", "opencv"), ("cc3d", "cc3d"), ("dwd_fast", "dwd_fast")) if facts.get(key))
    threads = facts.get("threads", {})
    thread_text = (f"threads: OpenCV {threads.get('cv2', '?')}, dwd_fast {threads.get('dwd_fast', '?')} "
                   f"(a page's work split over them; rows marked 1 thread: one), "
                   f"OMP_NUM_THREADS={threads.get('OMP_NUM_THREADS') or 'unset'}")
    when = data.get("datetime", "")[:19].replace("T", " ")
    line = f"**Machine**: {cpu}, {cores} cores; {versions}; {thread_text}. Run {when} UTC."
    loads = [b["extra_info"]["load_1min"] for b in data.get("benchmarks", [])
             if b["extra_info"].get("load_1min") is not None]
    if loads:
        line += f" Load average (1 min) at the start of each benchmark: {min(loads):.1f}-{max(loads):.1f}"
        if cores and max(loads) > cores:
            line += f" (**above the {cores} cores: other processes competed, timings are inflated**)"
        line += "."
    return line


def _group_key(group):
    """Sort groups by op name, then by the page's object count."""
    m = re.match(r"(.*?)\s*n=(\d+)$", group or "")
    return (m.group(1), int(m.group(2))) if m else (group or "", 0)


def _ms(seconds):
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


def _ratio(x):
    return f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _name(bench):
    return bench["extra_info"].get("implementation") or bench["name"]


def group_table(group, benches):
    """Markdown lines of one group's table."""
    benches = sorted(benches, key=lambda b: b["stats"]["median"])
    median = {_name(b): b["stats"]["median"] for b in benches}
    ours = next((m for name, m in median.items() if name.startswith("dwd_fast")), None)
    floor = median.get(FLOOR_NAME)
    lines = [f"### {group}", "",
             "| implementation | median (ms) | dwd_fast is ... faster | x floor | rounds | checked | load |",
             "|---|---:|---:|---:|---:|:---:|---:|"]
    for b in benches:
        name = _name(b)
        is_ours, is_floor = name.startswith("dwd_fast"), name == FLOOR_NAME
        faster = "" if (ours is None or is_ours or is_floor) else _ratio(median[name] / ours)
        times_floor = "" if floor is None else _ratio(median[name] / floor)
        correct = b["extra_info"].get("correct")
        checked = "" if correct is None else ("yes" if correct else "**WRONG**")
        label = f"**{name}**" if is_ours else name
        load = b["extra_info"].get("load_1min")
        load = "" if load is None else f"{load:.1f}"
        lines.append(f"| {label} | {_ms(median[name])} | {faster} | {times_floor} | {b['stats']['rounds']} "
                     f"| {checked} | {load} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("json", help="file written by pytest --benchmark-json")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        data = json.load(f)
    groups = {}
    for b in data.get("benchmarks", []):
        groups.setdefault(b.get("group") or "(no group)", []).append(b)
    out = [machine_line(data), ""]
    for group in sorted(groups, key=_group_key):
        out += group_table(group, groups[group]) + [""]
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
