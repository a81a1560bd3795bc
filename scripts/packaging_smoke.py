"""Smoke test of an INSTALLED ios_mp (a wheel, or an sdist built by pip).

Run it from outside the source tree: ``python scripts/packaging_smoke.py``
(scripts/check-packaging.sh does, after ``pip install`` of the sdist; the
Windows wheel job of .github/workflows/wheels.yml does, instead of the suite).
It checks that ios_mp and its native module come from site-packages, that
``import ios_mp`` makes ``multiprocessing`` ios_mp, and that a Process, a Queue
and a Lock work together. Prints one line and exits 0, or raises.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def square(q: Any, lock: Any, n: int) -> None:
    with lock:
        q.put(n * n)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    source_tree = os.path.dirname(here)

    import ios_mp  # first, as an app does: it installs itself as multiprocessing
    import ios_mp._core as core

    mp = importlib.import_module("multiprocessing")

    for mod in (ios_mp, core):
        path = os.path.realpath(mod.__file__ or "")
        if path.startswith(os.path.realpath(source_tree) + os.sep):
            raise SystemExit(
                f"{mod.__name__} imported from the source tree ({path}), not the install"
            )
    if mp is not ios_mp:
        raise SystemExit(f"import multiprocessing gave {mp!r}, not ios_mp")
    q = mp.Queue()
    lock = mp.Lock()
    procs = [mp.Process(target=square, args=(q, lock, n)) for n in range(4)]
    for p in procs:
        p.start()
    got = sorted(q.get(timeout=10) for _ in procs)
    for p in procs:
        p.join(10)
    codes = [p.exitcode for p in procs]
    if got != [0, 1, 4, 9] or codes != [0, 0, 0, 0]:
        raise SystemExit(f"unexpected results {got} / exit codes {codes}")
    print(f"ios_mp smoke OK: {os.path.basename(core.__file__ or '?')} on {sys.platform}, {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
