"""Where start+join work goes, counted: Python bytecodes per create+start+join.

Run with ios_mp installed, on CPython 3.12+ (it uses ``sys.monitoring``):
``python benches/start_join_bytecodes.py [--top N] [--n N]``. Counts the
bytecode instructions every thread executes per create+start+join of a bare
``threading.Thread`` and of an ``ios_mp.Process``, and lists the functions
that execute the most for the process. Unlike timings on a shared machine the
counts are exact and repeatable, so they show what a change to the start or
exit path saves. A diagnostic for docs/benchmarks.md, not a benchmark of record.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading

import ios_mp


def _noop() -> None:
    pass


def count(make, n: int) -> collections.Counter:
    """Bytecodes executed per code object over ``n`` create+start+join of ``make``."""
    mon = sys.monitoring
    tool = mon.PROFILER_ID
    mon.use_tool_id(tool, "start_join_bytecodes")
    counts: collections.Counter = collections.Counter()

    def on_instruction(code, offset):
        counts[code] += 1

    try:
        mon.register_callback(tool, mon.events.INSTRUCTION, on_instruction)
        mon.set_events(tool, mon.events.INSTRUCTION)
        for _ in range(n):
            p = make(target=_noop)
            p.start()
            p.join()
    finally:
        mon.set_events(tool, 0)
        mon.register_callback(tool, mon.events.INSTRUCTION, None)
        mon.free_tool_id(tool)
    return counts


def main() -> None:
    if sys.version_info < (3, 12):
        sys.exit("needs CPython 3.12+ (sys.monitoring)")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="create+start+join per kind")
    ap.add_argument("--top", type=int, default=30, help="functions to list")
    args = ap.parse_args()
    for make in (threading.Thread, ios_mp.Process):  # warm-up: imports, caches
        count(make, 20)
    per_op = {}
    for label, make in (("threading.Thread", threading.Thread), ("ios_mp.Process", ios_mp.Process)):
        counts = count(make, args.n)
        per_op[label] = counts
        print(f"{label:18s} {sum(counts.values()) / args.n:7.0f} bytecodes per create+start+join")
    print(f"\nios_mp.Process, top {args.top} functions (bytecodes per create+start+join):")
    for code, k in per_op["ios_mp.Process"].most_common(args.top):
        where = "/".join(code.co_filename.split("/")[-2:])
        print(f"{k / args.n:7.1f}  {code.co_qualname}  ({where}:{code.co_firstlineno})")


if __name__ == "__main__":
    main()
