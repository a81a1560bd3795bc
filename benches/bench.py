#!/usr/bin/env python3
"""Side-by-side micro-benchmarks: ios_mp vs plain threads vs stock multiprocessing.

    python benches/bench.py                 # full run (about 70 s on 2 cores)
    python benches/bench.py --quick         # CI smoke: small N, finishes in < 30 s
    python benches/bench.py --json out.json # also write every trial to a file

ios_mp must be installed (build its wheel and pip-install it). Stock
``multiprocessing`` is imported *before* ios_mp, so both live in this process;
stock objects are created and used with ios_mp temporarily uninstalled
(``ios_mp.uninstall()``), so the stdlib's own lazy imports resolve to the stdlib
and ``threading.Thread.start`` is the unpatched original.

Method: every benchmark runs each implementation once untimed (warm-up), then
``--trials`` rounds; in every round each implementation runs once, in a shuffled
order, so a noisy neighbour slows all of them alike instead of one. The table
shows the median time per operation over the rounds, its median absolute
deviation (MAD, in % of the median) and the ratio to the benchmark's reference.
Ratios are what to read: absolute times depend on the machine. Each aim is
checked on the ratio of the medians; the range of the per-round (paired) ratios
is printed beside it to show how firm the verdict is.

All in-process rows share one interpreter, so whatever a finished ios_mp process
leaves behind slows the baselines too. The last benchmark (``after_effect``)
measures that on its own, in fresh child interpreters.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as stock_mp  # stock, and below what its runs need: before ios_mp
import multiprocessing.connection
import multiprocessing.dummy
import multiprocessing.popen_fork
import multiprocessing.queues
import multiprocessing.synchronize
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
import warnings
from typing import Any, Callable, NamedTuple, Optional

STOCK_DUMMY_PROCESS = multiprocessing.dummy.Process
FORK = stock_mp.get_context("fork")
perf = time.perf_counter


def _import_ios_mp():
    with warnings.catch_warnings():
        # Stock multiprocessing was imported first on purpose.
        warnings.simplefilter("ignore")
        import ios_mp
        import ios_mp.queues
        import ios_mp.synchronize
    warnings.filterwarnings("ignore", category=ios_mp.IosMpImportOrderWarning)
    return ios_mp


ios_mp = _import_ios_mp()


def use_env(env: str) -> None:
    """'stock': sys.modules and threading as without ios_mp; 'ios_mp': installed."""
    if env == "stock":
        ios_mp.uninstall()
    else:
        ios_mp.install()


# --------------------------------------------------------------------------- workloads


def _noop() -> None:
    pass


def time_start_join(factory: Callable[..., Any], n: int) -> float:
    t0 = perf()
    for _ in range(n):
        p = factory(target=_noop)
        p.start()
        p.join()
    return perf() - t0


def _producer(q, ctrl, n: int, payload) -> None:
    q.put("ready")
    ctrl.get()
    put = q.put
    if payload is None:
        for i in range(n):
            put(i)
    else:
        for _ in range(n):
            put(payload)


def _close_queue(q) -> None:
    if isinstance(q, (stock_mp.queues.Queue, stock_mp.queues.SimpleQueue)):
        q.close()
        if hasattr(q, "join_thread"):
            q.join_thread()  # the feeder thread must be gone before the next fork


def time_stream(qf: Callable[[], Any], pf: Callable[..., Any], n: int, payload) -> float:
    """One producer process puts n items; the main thread gets them."""
    q, ctrl = qf(), qf()
    p = pf(target=_producer, args=(q, ctrl, n, payload))
    p.start()
    if q.get() != "ready":
        raise RuntimeError("producer did not start")
    get = q.get
    t0 = perf()
    ctrl.put("go")
    for _ in range(n):
        get()
    dt = perf() - t0
    p.join()
    _close_queue(q)
    _close_queue(ctrl)
    return dt


def _echo(inq, outq, n: int) -> None:
    get, put = inq.get, outq.put
    for _ in range(n):
        put(get())


def time_pingpong(qf: Callable[[], Any], pf: Callable[..., Any], n: int) -> float:
    """n round trips: main puts on a, the other process echoes it back on b."""
    a, b = qf(), qf()
    p = pf(target=_echo, args=(a, b, n + 1))
    p.start()
    a.put(-1)
    b.get()  # the echo process is up
    put, get = a.put, b.get
    t0 = perf()
    for i in range(n):
        put(i)
        get()
    dt = perf() - t0
    p.join()
    _close_queue(a)
    _close_queue(b)
    return dt


def _echo_pipe(conn, n: int) -> None:
    recv, send = conn.recv, conn.send
    for _ in range(n):
        send(recv())


def time_pingpong_pipe(pf: Callable[..., Any], n: int, pipe: Optional[Callable] = None) -> float:
    parent, child = (pipe or FORK.Pipe)()
    p = pf(target=_echo_pipe, args=(child, n + 1))
    p.start()
    parent.send(-1)
    parent.recv()
    send, recv = parent.send, parent.recv
    t0 = perf()
    for i in range(n):
        send(i)
        recv()
    dt = perf() - t0
    p.join()
    parent.close()
    child.close()
    return dt


def _pipe_producer(conn, n: int, size: int) -> None:
    payload = b"x" * size
    conn.recv()
    send = conn.send_bytes
    for _ in range(n):
        send(payload)
    conn.recv()


def time_pipe_bytes(pipe: Callable, pf: Callable[..., Any], n: int, size: int) -> float:
    """A producer process sends n messages of ``size`` bytes; the main thread
    receives them (Pipe throughput)."""
    parent, child = pipe()
    p = pf(target=_pipe_producer, args=(child, n, size))
    p.start()
    recv = parent.recv_bytes
    t0 = perf()
    parent.send("go")
    for _ in range(n):
        recv()
    dt = perf() - t0
    parent.send("done")
    p.join()
    parent.close()
    child.close()
    return dt


def time_lock_pair(lock_factory: Callable[[], Any], n: int) -> float:
    lock = lock_factory()
    acquire, release = lock.acquire, lock.release
    t0 = perf()
    for _ in range(n):
        acquire()
        release()
    return perf() - t0


def time_lock_with(lock_factory: Callable[[], Any], n: int) -> float:
    lock = lock_factory()
    t0 = perf()
    for _ in range(n):
        with lock:
            pass
    return perf() - t0


def time_empty_loop(n: int) -> float:
    t0 = perf()
    for _ in range(n):
        pass
    return perf() - t0


def _consumer(q) -> None:
    get, done = q.get, q.task_done
    while True:
        item = get()
        done()
        if item is None:
            return


def time_joinable(qf: Callable[[], Any], pf: Callable[..., Any], n: int) -> float:
    """Main puts n items, one consumer process get()s + task_done()s; then join()."""
    q = qf()
    p = pf(target=_consumer, args=(q,))
    p.start()
    q.put(-1)
    q.join()  # the consumer is up
    put = q.put
    t0 = perf()
    for i in range(n):
        put(i)
    q.join()
    dt = perf() - t0
    q.put(None)
    p.join()
    _close_queue(q)
    return dt


_AFTER_CHILD = """
import sys, threading, time
import ios_mp
def f():
    pass
kind, n = sys.argv[1], int(sys.argv[2])
p = (ios_mp.Process if kind == "ios_mp" else threading.Thread)(target=f)
p.start()
p.join()
def loop(n):
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return time.perf_counter() - t0
print(min(loop(n) for _ in range(3)))
"""


def time_after_effect(kind: str, n: int) -> float:
    """n calls of an empty function, in a fresh interpreter where one ``kind`` has run.

    Measures what one finished ios_mp process leaves behind for all later Python code
    of the app, against a plain thread (a child interpreter: the state is sticky).
    """
    out = subprocess.run(
        [sys.executable, "-c", _AFTER_CHILD, kind, str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-1])


# --------------------------------------------------------------------------- definitions


class Impl(NamedTuple):
    name: str
    env: str  # "ios_mp" or "stock": see use_env()
    n: int  # operations per trial
    run: Callable[[int], float]  # run(n) -> seconds for n operations
    info: bool = False  # shown for context, not compared


class Aim(NamedTuple):
    label: str
    num: str  # implementation names: value = median(num) / median(den)
    den: str
    op: str  # "<=": a ratio (slower by at most), ">=": a speed-up (faster by at least)
    target: float


class Bench(NamedTuple):
    key: str
    title: str
    unit: str  # what one operation is
    ref: str  # implementation the "vs ref" column divides by
    impls: list
    aims: list


def _thread(**kw) -> threading.Thread:
    return threading.Thread(daemon=True, **kw)


IOS_Q = ios_mp.queues.Queue
IOS_SQ = ios_mp.queues.SimpleQueue
IOS_JQ = ios_mp.queues.JoinableQueue
IOS_P = ios_mp.Process
IOS_PIPE = ios_mp.Pipe
KIB10 = bytes(range(256)) * 40
SMALL_DICT = {"id": 12345, "name": "item-12345", "tags": ["a", "b", "c"], "score": 1.5}


_GRAPHS: dict = {}


def nested_dict(entries: int) -> dict:
    """About 72 bytes of pickle per entry: 140 000 entries is ~10 MB."""
    key = ("dict", entries)
    if key not in _GRAPHS:
        _GRAPHS[key] = {
            str(i): {"k": list(range(20)), "s": "x" * 50, "n": {"a": i, "b": [i, "y"]}}
            for i in range(entries)
        }
    return _GRAPHS[key]


class _Node:
    def __init__(self, i: int) -> None:
        self.name = f"h{i}"
        self.vars = {"color": "blue", "port": 22, "list": [1, 2, 3]}
        self.groups = ["web", "db"]


def object_graph(entries: int) -> list:
    key = ("objects", entries)
    if key not in _GRAPHS:
        _GRAPHS[key] = [_Node(i) for i in range(entries)]
    return _GRAPHS[key]


def time_copy(how: str, make, n: int) -> float:
    import copy
    import pickle

    from ios_mp._snapshot import snapshot

    graph = make()
    fn = {
        "snapshot": snapshot,
        "pickle": lambda g: pickle.loads(pickle.dumps(g, pickle.HIGHEST_PROTOCOL)),
        "deepcopy": copy.deepcopy,
    }[how]
    t0 = perf()
    for _ in range(n):
        fn(graph)
    return perf() - t0


def build(quick: bool) -> list:
    def sz(full: int, small: int) -> int:
        return small if quick else full

    benches = []

    n_thr, n_fork = sz(800, 200), sz(16, 6)
    benches.append(
        Bench(
            "start_join",
            "Process create+start+join (trivial target)",
            "process",
            "threading.Thread",
            [
                Impl(
                    "threading.Thread",
                    "stock",
                    n_thr,
                    lambda n: time_start_join(threading.Thread, n),
                ),
                Impl(
                    "threading.Thread, ios_mp installed",
                    "ios_mp",
                    n_thr,
                    lambda n: time_start_join(threading.Thread, n),
                    info=True,
                ),
                Impl("ios_mp.Process", "ios_mp", n_thr, lambda n: time_start_join(IOS_P, n)),
                Impl(
                    "multiprocessing.dummy.Process",
                    "stock",
                    n_thr,
                    lambda n: time_start_join(STOCK_DUMMY_PROCESS, n),
                ),
                Impl(
                    "stock mp fork Process",
                    "stock",
                    n_fork,
                    lambda n: time_start_join(FORK.Process, n),
                ),
            ],
            [
                Aim(
                    "ios_mp.Process vs threading.Thread",
                    "ios_mp.Process",
                    "threading.Thread",
                    "<=",
                    1.5,
                ),
                Aim(
                    "ios_mp.Process speed-up vs fork",
                    "stock mp fork Process",
                    "ios_mp.Process",
                    ">=",
                    20.0,
                ),
            ],
        )
    )

    payloads = [
        ("queue_int", "small int", None, sz(50_000, 3000), sz(10_000, 1000)),
        ("queue_10k", "10 KiB bytes", KIB10, sz(20_000, 1000), sz(3000, 300)),
        ("queue_dict", "small dict", SMALL_DICT, sz(20_000, 2000), sz(5000, 500)),
    ]
    for key, what, payload, n, n_mp in payloads:

        def stream(qf, pf, payload=payload):
            return lambda k: time_stream(qf, pf, k, payload)

        benches.append(
            Bench(
                key,
                f"Queue 1->1 throughput, {what} items",
                "item",
                "queue.SimpleQueue",
                [
                    Impl("ios_mp Queue (copy)", "ios_mp", n, stream(IOS_Q, IOS_P)),
                    Impl(
                        "ios_mp Queue(copy=False)",
                        "ios_mp",
                        n,
                        stream(lambda: IOS_Q(copy=False), IOS_P),
                    ),
                    Impl("queue.SimpleQueue", "ios_mp", n, stream(queue.SimpleQueue, _thread)),
                    Impl("queue.Queue", "ios_mp", n, stream(queue.Queue, _thread)),
                    Impl("stock mp.Queue (fork)", "stock", n_mp, stream(FORK.Queue, FORK.Process)),
                ],
                [
                    Aim(
                        f"Queue copy-on speed-up vs stock mp.Queue ({what})",
                        "stock mp.Queue (fork)",
                        "ios_mp Queue (copy)",
                        ">=",
                        5.0,
                    ),
                    Aim(
                        f"Queue copy-off vs queue.SimpleQueue ({what})",
                        "ios_mp Queue(copy=False)",
                        "queue.SimpleQueue",
                        "<=",
                        2.0,
                    ),
                ],
            )
        )

    n, n_mp = sz(8000, 1000), sz(3000, 300)
    benches.append(
        Bench(
            "pingpong",
            "Ping-pong round trip through two queues (small int)",
            "round trip",
            "queue.SimpleQueue",
            [
                Impl("ios_mp Queue (copy)", "ios_mp", n, lambda k: time_pingpong(IOS_Q, IOS_P, k)),
                Impl(
                    "ios_mp SimpleQueue (copy)",
                    "ios_mp",
                    n,
                    lambda k: time_pingpong(IOS_SQ, IOS_P, k),
                ),
                Impl(
                    "queue.SimpleQueue",
                    "ios_mp",
                    n,
                    lambda k: time_pingpong(queue.SimpleQueue, _thread, k),
                ),
                Impl(
                    "stock mp.SimpleQueue x2 (fork)",
                    "stock",
                    n_mp,
                    lambda k: time_pingpong(FORK.SimpleQueue, FORK.Process, k),
                ),
                Impl(
                    "ios_mp Pipe",
                    "ios_mp",
                    n_mp,
                    lambda k: time_pingpong_pipe(IOS_P, k, IOS_PIPE),
                ),
                Impl(
                    "stock mp.Pipe (fork)",
                    "stock",
                    n_mp,
                    lambda k: time_pingpong_pipe(FORK.Process, k),
                ),
            ],
            [
                Aim(
                    "ping-pong ios_mp Queue vs queue.SimpleQueue",
                    "ios_mp Queue (copy)",
                    "queue.SimpleQueue",
                    "<=",
                    1.2,
                ),
                Aim(
                    "ping-pong ios_mp SimpleQueue vs queue.SimpleQueue",
                    "ios_mp SimpleQueue (copy)",
                    "queue.SimpleQueue",
                    "<=",
                    1.2,
                ),
            ],
        )
    )

    n = sz(20_000, 2000)
    for size in (64, 65536):
        benches.append(
            Bench(
                f"pipe_bytes_{size}",
                f"Pipe throughput: a process sends {size}-byte messages (send_bytes/recv_bytes)",
                "message",
                "stock mp.Pipe (fork)",
                [
                    Impl(
                        "ios_mp Pipe",
                        "ios_mp",
                        n,
                        lambda k, size=size: time_pipe_bytes(IOS_PIPE, IOS_P, k, size),
                    ),
                    Impl(
                        "stock mp.Pipe (fork)",
                        "stock",
                        n,
                        lambda k, size=size: time_pipe_bytes(FORK.Pipe, FORK.Process, k, size),
                    ),
                ],
                [],
            )
        )

    n = sz(500_000, 50_000)
    for key, what, fn in [
        ("lock_pair", "acquire(); release()", time_lock_pair),
        ("lock_with", "with lock: pass", time_lock_with),
    ]:

        def lock(factory, fn=fn):
            return lambda k: fn(factory, k)

        benches.append(
            Bench(
                key,
                f"Lock, uncontended: {what}",
                "pair",
                "threading.Lock",
                [
                    Impl("ios_mp Lock", "ios_mp", n, lock(ios_mp.Lock)),
                    Impl("threading.Lock", "ios_mp", n, lock(threading.Lock)),
                    Impl("stock mp.Lock", "stock", n, lock(FORK.Lock)),
                    Impl("(empty loop)", "ios_mp", n, time_empty_loop, info=True),
                ],
                [
                    Aim(
                        f"Lock vs threading.Lock ({what})",
                        "ios_mp Lock",
                        "threading.Lock",
                        "<=",
                        2.0,
                    )
                ],
            )
        )

    n, n_mp = sz(20_000, 1500), sz(3000, 300)
    benches.append(
        Bench(
            "joinable",
            "JoinableQueue put / get+task_done / join (small int)",
            "item",
            "queue.Queue",
            [
                Impl(
                    "ios_mp JoinableQueue", "ios_mp", n, lambda k: time_joinable(IOS_JQ, IOS_P, k)
                ),
                Impl("queue.Queue", "ios_mp", n, lambda k: time_joinable(queue.Queue, _thread, k)),
                Impl(
                    "stock mp.JoinableQueue (fork)",
                    "stock",
                    n_mp,
                    lambda k: time_joinable(FORK.JoinableQueue, FORK.Process, k),
                ),
            ],
            [],
        )
    )

    for key, what, make in [
        (
            "snapshot_dict",
            "a nested dict, ~10 MB pickled (quick: ~1 MB)",
            lambda: nested_dict(sz(140_000, 14_000)),
        ),
        (
            "snapshot_objects",
            "20 000 plain objects (Host-like; quick: 2 000)",
            lambda: object_graph(sz(20_000, 2_000)),
        ),
    ]:

        def copier(how, make=make):
            return lambda k: time_copy(how, make, k)

        benches.append(
            Bench(
                key,
                f"Fork-like snapshot of {what}",
                "copy",
                "pickle round trip",
                [
                    Impl("ios_mp snapshot", "ios_mp", 1, copier("snapshot")),
                    Impl("pickle round trip", "ios_mp", 1, copier("pickle")),
                    Impl("copy.deepcopy", "ios_mp", 1, copier("deepcopy")),
                ],
                [
                    Aim(
                        f"snapshot vs pickle round trip ({key})",
                        "ios_mp snapshot",
                        "pickle round trip",
                        "<=",
                        1.0,
                    )
                ],
            )
        )

    n = sz(1_000_000, 200_000)
    benches.append(
        Bench(
            "after_effect",
            "Python call cost after one worker has run (fresh interpreter each)",
            "call",
            "after one threading.Thread",
            [
                Impl(
                    "after one threading.Thread",
                    "ios_mp",
                    n,
                    lambda k: time_after_effect("thread", k),
                ),
                Impl(
                    "after one ios_mp.Process",
                    "ios_mp",
                    n,
                    lambda k: time_after_effect("ios_mp", k),
                ),
            ],
            [],
        )
    )
    return benches


# --------------------------------------------------------------------------- running


def run_once(impl: Impl, n: int) -> float:
    use_env(impl.env)
    gc.collect()
    try:
        return impl.run(n)
    finally:
        use_env("ios_mp")
        if threading.active_count() > 1:
            # Leftover threads would make the next fork unsafe; give them a moment.
            deadline = perf() + 5
            while threading.active_count() > 1 and perf() < deadline:
                time.sleep(0.01)


def run_bench(b: Bench, trials: int, rng: random.Random) -> dict:
    t_start = perf()
    per_op: dict = {i.name: [] for i in b.impls}
    for impl in b.impls:  # warm-up: imports, caches, first-thread costs
        run_once(impl, max(1, impl.n // 10))
    for _ in range(trials):
        order = list(b.impls)
        rng.shuffle(order)
        for impl in order:
            per_op[impl.name].append(run_once(impl, impl.n) / impl.n)
    med = {k: statistics.median(v) for k, v in per_op.items()}
    rows = []
    for impl in b.impls:
        v = per_op[impl.name]
        m = med[impl.name]
        mad = statistics.median(abs(x - m) for x in v)
        rows.append(
            {
                "impl": impl.name,
                "env": impl.env,
                "n": impl.n,
                "info": impl.info,
                "median_s": m,
                "mad_pct": 100 * mad / m if m else 0.0,
                "vs_ref": m / med[b.ref],
                "trials_s": v,
            }
        )
    aims = []
    for a in b.aims:
        value = med[a.num] / med[a.den]
        paired = [x / y for x, y in zip(per_op[a.num], per_op[a.den])]
        met = value <= a.target if a.op == "<=" else value >= a.target
        aims.append(
            {
                "bench": b.key,
                "label": a.label,
                "num": a.num,
                "den": a.den,
                "op": a.op,
                "target": a.target,
                "value": value,
                "met": met,
                "paired_min": min(paired),
                "paired_max": max(paired),
            }
        )
    return {
        "key": b.key,
        "title": b.title,
        "unit": b.unit,
        "ref": b.ref,
        "rows": rows,
        "aims": aims,
        "wall_s": perf() - t_start,
    }


def fmt_time(s: float) -> str:
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.2f} us"
    return f"{s * 1e9:.1f} ns"


def fmt_aim(a: dict) -> str:
    kind = "ratio" if a["op"] == "<=" else "speed-up"
    return (
        f"{kind} {a['value']:.2f}x, aim {a['op']} {a['target']:g}x "
        f"(per-round {a['paired_min']:.2f}x..{a['paired_max']:.2f}x)"
    )


def _aim_marks(r: dict) -> dict:
    """Per implementation: the aims it is checked against, for the table's last column."""
    marks: dict = {}
    for a in r["aims"]:
        verdict = "met" if a["met"] else "MISSED"
        if a["op"] == ">=":
            impl = a["den"]
            txt = f"{a['value']:.1f}x faster than {a['num']}, aim >={a['target']:g}x"
        else:
            impl, txt = a["num"], f"aim <={a['target']:g}x vs {a['den']}"
        marks.setdefault(impl, []).append(f"{txt}: {verdict}")
    return marks


def render(results: list) -> str:
    head = ("benchmark", "implementation", "median/op", "MAD", "vs ref", "aim")
    rows: list = []
    for r in results:
        marks = _aim_marks(r)
        for i, row in enumerate(r["rows"]):
            name = row["impl"] + (" [ref]" if row["impl"] == r["ref"] else "")
            name += " (info)" if row["info"] else ""
            rows.append(
                (
                    f"{r['key']} (per {r['unit']})" if i == 0 else "",
                    name,
                    fmt_time(row["median_s"]),
                    f"{row['mad_pct']:.0f}%",
                    f"{row['vs_ref']:.2f}x",
                    "; ".join(marks.get(row["impl"], [])),
                )
            )
        rows.append(None)
    widths = [max(len(head[i]), *(len(t[i]) for t in rows if t)) for i in range(5)]

    def line(cells) -> str:
        left = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        right = [cells[i].rjust(widths[i]) for i in (2, 3, 4)]
        return "  ".join([*left, *right, cells[5]]).rstrip()

    lines = [line(head), "-" * (sum(widths) + 10 + 24)]
    lines += ["" if t is None else line(t) for t in rows[:-1]]
    aims = [a for r in results for a in r["aims"]]
    if aims:
        lines += ["", "Aims (ratio of the medians; per-round: range of the paired ratios):"]
        for a in aims:
            verdict = "met   " if a["met"] else "MISSED"
            lines.append(f"  [{verdict}] {a['label']}: {fmt_aim(a)}")
        lines.append(f"  {sum(a['met'] for a in aims)} of {len(aims)} aims met")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    """1/5/15-minute load averages: how busy the machine was (others' jobs count too)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N (CI smoke, < 30 s)")
    ap.add_argument("--json", metavar="FILE", help="write all results and trials to FILE")
    ap.add_argument(
        "--trials", type=int, default=None, help="rounds per benchmark (default 15, 3 with --quick)"
    )
    ap.add_argument(
        "--only",
        metavar="KEYS",
        default=None,
        help="comma-separated benchmark keys to run (default: all)",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of the run order shuffle")
    args = ap.parse_args(argv)
    trials = args.trials or (3 if args.quick else 15)
    benches = build(args.quick)
    if args.only:
        keys = set(args.only.split(","))
        unknown = keys - {b.key for b in benches}
        if unknown:
            ap.error(
                f"unknown benchmark(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(b.key for b in benches)}"
            )
        benches = [b for b in benches if b.key in keys]
    meta = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "ios_mp": getattr(ios_mp, "__version__", "?"),
        "quick": args.quick,
        "trials": trials,
        "seed": args.seed,
        "loadavg_start": _loadavg(),
    }
    print(
        f"ios_mp {meta['ios_mp']} | Python {meta['python']} | {meta['cpus']} CPUs "
        f"({meta['cpu']}) | {meta['date']} | trials={trials}{' quick' if args.quick else ''}"
        f" | load avg {meta['loadavg_start']}"
    )
    rng = random.Random(args.seed)
    results = []
    t0 = perf()
    for b in benches:
        print(f"  running {b.key}: {b.title} ...", file=sys.stderr, flush=True)
        results.append(run_bench(b, trials, rng))
    meta["wall_s"] = perf() - t0
    meta["loadavg_end"] = _loadavg()
    print()
    print(render(results))
    print(f"\n(total {meta['wall_s']:.1f} s; load avg at the end {meta['loadavg_end']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "benchmarks": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
