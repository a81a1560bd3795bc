"""A small multiprocessing program.

Run it with ``python -m ios_mp --sandbox ios examples/demo.py``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Lock


def square(q: Queue[tuple[int, int, str]], lock: Lock, n: int) -> None:
    with lock:
        q.put((n, n * n, mp.current_process().name))


def main() -> None:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    lock = ctx.Lock()
    procs = [ctx.Process(target=square, args=(q, lock, n)) for n in range(4)]
    for p in procs:
        p.start()
    results = sorted(q.get(timeout=10) for _ in procs)
    for p in procs:
        p.join()
    print("multiprocessing is", mp.__name__, "| os.fork available:", hasattr(os, "fork"))
    for n, sq, name in results:
        print(f"{name}: {n}^2 = {sq}")
    print("exit codes:", [p.exitcode for p in procs])


if __name__ == "__main__":
    main()
