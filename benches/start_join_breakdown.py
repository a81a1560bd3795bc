"""Where start+join time goes: ios_mp.Process with parts switched off.

Run with the wheel installed: ``python benches/start_join_breakdown.py``. Prints
the median microseconds per create+start+join (5 rounds of 1500) for a bare
thread, ios_mp.Process, and ios_mp.Process without the snapshot and/or without
the start/exit hooks (stdio views, Connection handles, signal table). A
diagnostic for docs/benchmarks.md, not a benchmark of record.
"""

from __future__ import annotations

import statistics
import threading
import time

import ios_mp
from ios_mp import process


def _noop() -> None:
    pass


class NoSnapshot(ios_mp.Process):
    __ios_mp_snapshot__ = False


def per_op_us(start_join, n: int = 1500, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            start_join()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


def process_of(cls):
    def start_join() -> None:
        p = cls(target=_noop)
        p.start()
        p.join()

    return start_join


def bare_thread() -> None:
    t = threading.Thread(target=_noop)
    t.start()
    t.join()


def main() -> None:
    print(f"threading.Thread            {per_op_us(bare_thread):7.0f} us")
    print(f"ios_mp.Process              {per_op_us(process_of(ios_mp.Process)):7.0f} us")
    print(f"  without the snapshot      {per_op_us(process_of(NoSnapshot)):7.0f} us")
    start, exit_ = list(process._start_hooks), list(process._exit_hooks)
    keep = [process._register_vpid]
    process._start_hooks[:] = [h for h in start if h in keep]
    process._exit_hooks[:] = []
    try:
        print(f"  without hooks             {per_op_us(process_of(ios_mp.Process)):7.0f} us")
        print(f"  without both              {per_op_us(process_of(NoSnapshot)):7.0f} us")
    finally:
        process._start_hooks[:] = start
        process._exit_hooks[:] = exit_


if __name__ == "__main__":
    main()
