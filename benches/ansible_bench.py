"""Playbook wall time: ansible-core on ios_mp vs stock ansible-playbook (fork).

Runs tests/ansible/pb_hosts.yml (gather_facts, file, copy, template, command, shell,
slurp, set_fact, find and per-host asserts) against N inventory aliases of 127.0.0.1,
over ``paramiko_ssh`` to the loopback demo sshd (``ios_mp.ansible.demo``) and over
``local``, side by side in one run, with these implementations:

* ``fork``: stock ``ansible-playbook`` in a subprocess, without ios_mp (real fork
  workers);
* ``cli``: ``python -m ios_mp [--sandbox ios] ansible-playbook`` in a subprocess (worker
  threads; like ``fork``, it includes interpreter start-up and ansible's imports);
* ``inproc``: ``ios_mp.ansible.run_playbook()`` in this process (what an app does: the
  imports are paid once, by the warm-up run).

paramiko runs ``cli`` and ``inproc`` under the faithful iOS sandbox (``--sandbox ios``);
``local`` cannot (it runs each module with ``subprocess``), so there both run without it.
Every implementation runs once untimed per connection (warm-up: the in-process one pays
ansible's imports there), then for each case each of ``--trials`` rounds runs every
implementation once in a shuffled order (a burst of load from elsewhere lands on
all of them). Every run must end with rc 0 (the playbook asserts its own results). The
table shows the median wall time, its median absolute deviation (% of the median) and
the ratio of the medians to ``fork``.

usage (root: the demo sshd logs in as a dedicated user; needs ansible-core<2.21 and
paramiko in this interpreter's environment, ``ansible-playbook`` beside it)::

    python benches/ansible_bench.py [--trials 5] [--only paramiko-5-f5,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import ios_mp
import ios_mp.ansible as ia
from ios_mp import sandbox
from ios_mp.ansible import demo

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = ROOT / "tests" / "ansible" / "pb_hosts.yml"
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
ENV = {
    "ANSIBLE_NOCOWS": "1",
    "ANSIBLE_PARAMIKO_LOOK_FOR_KEYS": "False",
    "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    # The real login name: with a made-up one the local connection's remote tmp
    # ``~name/.ansible/tmp`` does not expand (see docs/benchmarks.md, ansible section).
    "USER": pwd.getpwuid(os.getuid()).pw_name,
    "LOGNAME": pwd.getpwuid(os.getuid()).pw_name,
}
IMPLS = ("fork", "cli", "inproc")
# (connection, hosts, forks), most telling first. ansible starts min(forks, hosts)
# workers, so the 5-host cases at forks=20 run 5 workers like forks=5 (last, optional).
CASES = [
    ("paramiko", 5, 5),
    ("paramiko", 20, 20),
    ("local", 5, 5),
    ("local", 20, 20),
    ("paramiko", 20, 5),
    ("local", 20, 5),
    ("paramiko", 5, 20),
    ("local", 5, 20),
]


def key(case: tuple[str, int, int]) -> str:
    conn, hosts, forks = case
    return f"{conn}-{hosts}-f{forks}"


class RunFailed(RuntimeError):
    pass


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, **ENV)
    env.pop("PYTHONPATH", None)
    return env


def run_fork(inventory: Path, forks: int, sandboxed: bool) -> float:
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-f", str(forks)]
    return _run_cmd(cmd)


def run_cli(inventory: Path, forks: int, sandboxed: bool) -> float:
    cmd = [sys.executable, "-m", "ios_mp"]
    if sandboxed:
        cmd += ["--sandbox", "ios"]
    cmd += [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-f", str(forks)]
    return _run_cmd(cmd)


def _run_cmd(cmd: list[str]) -> float:
    cmd = [*cmd, "-e", json.dumps({"run_id": uuid.uuid4().hex[:12]}), str(PLAYBOOK)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_subprocess_env(), capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RunFailed(f"{cmd[:4]}: rc {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr}")
    return secs


def run_inproc(inventory: Path, forks: int, sandboxed: bool) -> float:
    if sandboxed:
        sandbox.enable("ios")
    try:
        t0 = time.perf_counter()
        res = ia.run_playbook(
            PLAYBOOK,
            inventory,
            forks=forks,
            extra_vars={"run_id": uuid.uuid4().hex[:12]},
            env=ENV,
        )
        secs = time.perf_counter() - t0
    finally:
        if sandboxed:
            sandbox.disable()
    if res.rc != 0:
        raise RunFailed(f"run_playbook: rc {res.rc}\n{res.stdout[-3000:]}\n{res.problems}")
    return secs


RUNNERS = {"fork": run_fork, "cli": run_cli, "inproc": run_inproc}


def time_snapshots() -> dict[str, Any]:
    """Wrap ``ios_mp._snapshot.snapshot_process`` (the fork-like copy a worker gets at
    ``start()``) to count its calls, wall and CPU time (CPU: without the waits for the
    GIL, which the running workers hold). Every 10th ansible ``WorkerProcess`` start
    also copies each attribute of its ``__dict__`` alone, timed (CPU), to show where
    the time goes. Must run before the first ``start()`` (the native core keeps the
    function it first imported)."""
    from ios_mp import _snapshot

    orig = _snapshot.snapshot_process
    stats: dict[str, Any] = {"calls": 0, "wall": 0.0, "cpu": 0.0, "attrs": {}, "workers": 0}

    def timed(proc, target, args, kwargs):
        if type(proc).__name__ == "WorkerProcess":
            stats["workers"] += 1
            if stats["workers"] % 10 == 1:
                for name, value in vars(proc).items():
                    t = time.thread_time()
                    _snapshot.snapshot(value)
                    stats["attrs"].setdefault(name, []).append(time.thread_time() - t)
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return orig(proc, target, args, kwargs)
        finally:
            stats["calls"] += 1
            stats["wall"] += time.perf_counter() - t0
            stats["cpu"] += time.thread_time() - c0

    _snapshot.snapshot_process = timed
    return stats


def share_plugin_loaders() -> None:
    """``--share-plugin-loaders`` (the fix proposed for ios_mp.ansible.compat): ansible
    2.19+ hands each worker ``get_plugin_loader_namespace()``, a SimpleNamespace of the
    plugin loaders (2.16-2.18 handed the ``ansible.plugins.loader`` module, which a
    snapshot shares). ios_mp's snapshot copies it with ``copy.deepcopy``, which runs
    ``PluginLoader.__setstate__`` (a fresh ``__init__``): each worker gets cold loaders
    (no path or module caches) and searches the plugin directories again. Fork gives
    the child the parent's warm loaders. Marking the namespace shared gives workers the
    parent's loaders, as ``ansible.plugins.loader``'s module globals already are."""
    import types

    from ansible.plugins import loader

    if getattr(loader.get_plugin_loader_namespace, "__ios_mp_patched__", False):
        return
    original = loader.get_plugin_loader_namespace

    class SharedNamespace(types.SimpleNamespace):
        __ios_mp_share__ = True

    def get_plugin_loader_namespace() -> types.SimpleNamespace:
        return SharedNamespace(**vars(original()))

    get_plugin_loader_namespace.__ios_mp_patched__ = True  # type: ignore[attr-defined]
    loader.get_plugin_loader_namespace = get_plugin_loader_namespace


def phases(cases: list[tuple[str, int, int]], top: Path, trials: int) -> None:
    """``--phases``: in-process runs only, with the time ios_mp spends copying each
    worker's snapshot at ``start()``."""
    stats = time_snapshots()
    for conn, hosts, forks in cases:
        inv = top / f"{conn}-{hosts}.ini"
        run_inproc(inv, forks, conn == "paramiko")  # warm-up
        for _ in range(trials):
            stats.update(calls=0, wall=0.0, cpu=0.0, attrs={}, workers=0)
            secs = run_inproc(inv, forks, conn == "paramiko")
            n = max(1, stats["calls"])
            print(
                f"{key((conn, hosts, forks))}: run {secs:.2f}s, {stats['calls']} worker starts,"
                f" snapshot copies {stats['wall']:.2f}s wall ({100 * stats['wall'] / secs:.0f}%"
                f" of the run, {1000 * stats['wall'] / n:.1f} ms each),"
                f" {stats['cpu']:.2f}s CPU ({1000 * stats['cpu'] / n:.1f} ms each)",
                flush=True,
            )
            attrs = {k: statistics.mean(v) for k, v in stats["attrs"].items()}
            top_attrs = sorted(attrs.items(), key=lambda kv: -kv[1])[:6]
            print(
                "  per WorkerProcess attribute, copied alone (CPU, mean of sampled starts): "
                + ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in top_attrs),
                flush=True,
            )


def mad_pct(xs: list[float]) -> float:
    med = statistics.median(xs)
    return 100 * statistics.median(abs(x - med) for x in xs) / med if med else 0.0


def ansible_version() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
    )
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--only", default="", help="comma-separated case keys, e.g. local-5-f5")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"subset of {','.join(IMPLS)}")
    parser.add_argument("--json", default=None, help="also write every timing to this file")
    parser.add_argument(
        "--share-plugin-loaders",
        action="store_true",
        help="experiment: in-process workers share ansible's plugin loaders (no copy)",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="in-process runs only: time spent in the workers' snapshot copies",
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"argument --trials: must be >= 1, got {args.trials}")
    impls = [i for i in args.impls.split(",") if i]
    bad = [i for i in impls if i not in IMPLS]
    if bad:
        parser.error(f"argument --impls: unknown {bad} (choose from {', '.join(IMPLS)})")
    cases = CASES
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {key(c) for c in CASES}
        if unknown:
            parser.error(
                f"argument --only: unknown {sorted(unknown)}; have {[key(c) for c in CASES]}"
            )
        cases = [c for c in CASES if key(c) in wanted]
    if not ANSIBLE_PLAYBOOK.exists():
        parser.error(f"{ANSIBLE_PLAYBOOK} missing (pip install 'ansible-core<2.21' paramiko)")

    top = Path(tempfile.mkdtemp(prefix="iosmp-ansible-bench-"))
    os.chmod(top, 0o755)
    ENV["ANSIBLE_LOCAL_TEMP"] = str(top / "ansible-local")  # this run's own
    sshd = None
    try:
        if any(c[0] == "paramiko" for c in cases):
            sshd = demo.start_sshd(top / "sshd")
        for conn, hosts, _ in cases:
            inv = top / f"{conn}-{hosts}.ini"
            if inv.exists():
                continue
            demo.write_inventory(
                inv,
                hosts,
                connection="paramiko_ssh" if conn == "paramiko" else "local",
                sshd=sshd,
                workdir=sshd.workdir if sshd is not None and conn == "paramiko" else str(top),
                group_vars={"group_color": "blue"},
            )
        print(
            f"# ansible_bench: Python {platform.python_version()}, ansible-core "
            f"{ansible_version()}, {os.cpu_count()} CPUs, {platform.platform()}, "
            f"trials {args.trials}",
            flush=True,
        )
        if args.share_plugin_loaders:
            share_plugin_loaders()
        if args.phases:
            phases(cases, top, args.trials)
            return 0
        results: dict[str, dict[str, list[float]]] = {}
        warmed: set[tuple[str, str]] = set()
        for case in cases:
            conn, hosts, forks = case
            inv = top / f"{conn}-{hosts}.ini"
            sandboxed = conn == "paramiko"
            times: dict[str, list[float]] = {i: [] for i in impls}
            for impl in impls:  # warm-up: once per implementation and connection
                if (impl, conn) not in warmed:
                    RUNNERS[impl](inv, forks, sandboxed)
                    warmed.add((impl, conn))
            for _ in range(args.trials):
                order = list(impls)
                random.shuffle(order)
                for impl in order:
                    times[impl].append(RUNNERS[impl](inv, forks, sandboxed))
            results[key(case)] = times
            line = f"{key(case):<18}"
            base = statistics.median(times["fork"]) if "fork" in times else None
            for impl in impls:
                med = statistics.median(times[impl])
                ratio = f" x{med / base:.2f}" if base else ""
                line += f"  {impl} {med:6.2f}s ±{mad_pct(times[impl]):4.1f}%{ratio}"
            print(line, flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
        _table(results, impls)
    finally:
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(top, ignore_errors=True)
    return 0


def _table(results: dict[str, dict[str, list[float]]], impls: list[str]) -> None:
    head = "| case (connection-hosts-forks) |"
    sep = "|---|"
    for impl in impls:
        head += f" {impl} median (MAD) |"
        sep += "---|"
        if impl != "fork" and "fork" in impls:
            head += f" {impl}/fork |"
            sep += "---|"
    print()
    print(head)
    print(sep)
    for k, times in results.items():
        base = statistics.median(times["fork"]) if "fork" in times else None
        row = f"| {k} |"
        for impl in impls:
            med = statistics.median(times[impl])
            row += f" {med:.2f} s ({mad_pct(times[impl]):.0f}%) |"
            if impl != "fork" and base:
                row += f" {med / base:.2f} |"
        print(row)


if __name__ == "__main__":
    assert ios_mp  # imported first: installed as multiprocessing for the in-process runs
    sys.exit(main())
