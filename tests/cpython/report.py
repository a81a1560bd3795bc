"""Print the table of docs/cpython-suite.md: CPython's multiprocessing tests under ios_mp.

Usage (from the repository root)::

    python tests/cpython/report.py --run /path/to/venv-3.9/bin/python --run ...
    python tests/cpython/report.py dist/junit-3.*.xml

``--run PYTHON`` runs ``PYTHON -m pytest tests/test_cpython_suite.py`` (PYTHON must
have pytest, pytest-timeout and ios_mp installed) and reads its junit xml; a
positional argument is a junit xml file already written by such a run, or by
``scripts/test.sh`` (which writes ``dist/junit-3.X.xml`` for the whole test
suite; only this module's tests are counted). The output is Markdown: per
CPython version and flavour (processes, manager, misc, threads, futures) the
selected / passed / failed / excluded / skipped-by-the-suite counts, the issue's
bar per version, a per-area table (``_TestX`` area, plain class, or futures
class) across versions, the tests that failed, and the exclusion list with
reasons, generated from ``tests/cpython/exclusions.py``. A test that failed in
its call and again in its teardown counts once. The environment is passed on
(``IOS_MP_CPYTHON_FUTURES=1`` also runs the futures classes on 3.10).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODULE = "tests.test_cpython_suite"
EXCLUDED_PREFIX = "excluded: "


def _exclusions():
    spec = importlib.util.spec_from_file_location("_cpython_exclusions", HERE / "exclusions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FLAVOURS = ("processes", "manager", "misc", "threads", "futures")
OUTCOMES = ("passed", "failed", "excluded", "skipped")


def flavour_of(class_name: str) -> str:
    """As ``flavour_of`` in tests/test_cpython_suite.py."""
    for flavour in ("processes", "manager", "threads"):
        if class_name.startswith("With" + flavour.capitalize() + "Test"):
            return flavour
    if class_name.startswith("ProcessPool"):
        return "futures"
    return "misc"


def area_of(class_name: str) -> str:
    """``_TestX`` for ``With<Flavour>TestX``; a futures class less its executor
    prefix (``ProcessPoolFork``); a plain class is its own area."""
    flavour = flavour_of(class_name)
    if flavour in ("processes", "manager", "threads"):
        return "_Test" + class_name[len("With" + flavour.capitalize() + "Test") :]
    if flavour == "futures":
        return class_name[len("ProcessPoolFork") :]
    return class_name


def _outcome(case) -> str:
    tags = {child.tag: child for child in case}
    if "failure" in tags or "error" in tags:
        return "failed"
    if "skipped" in tags:
        message = tags["skipped"].get("message", "")
        return "excluded" if message.startswith(EXCLUDED_PREFIX) else "skipped"
    return "passed"


def _counts(junit: Path) -> dict:
    """One version's results: test id -> outcome (a test that failed in its call
    and again in its teardown has two junit entries: it counts once, failed)."""
    root = ET.parse(junit).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    outcomes: dict[str, str] = {}
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        if not classname.startswith(MODULE + "."):
            continue  # this module's own checks (no class), or another test module
        test_id = f"{classname.rsplit('.', 1)[-1]}.{case.get('name')}"
        outcome = _outcome(case)
        if outcomes.get(test_id) != "failed":
            outcomes[test_id] = outcome
    if not outcomes:
        raise SystemExit(f"{junit}: no test of {MODULE} in it")
    return {"python": props.get("cpython_suite_python", "?"), "outcomes": outcomes}


def _tally(outcomes: dict, keep) -> dict:
    counts = dict.fromkeys(OUTCOMES, 0)
    for test_id, outcome in outcomes.items():
        if keep(test_id.split(".", 1)[0]):
            counts[outcome] += 1
    counts["selected"] = sum(counts[o] for o in OUTCOMES)
    return counts


def _run(python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
             str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "--junitxml", str(junit),
             "tests/test_cpython_suite.py"],
            cwd=ROOT, env=env, check=False, stdout=sys.stderr,
        )
        if not junit.exists():
            raise SystemExit(f"{python}: pytest wrote no junit xml")
        return _counts(junit)


def _version_key(row: dict):
    return tuple(int(x) for x in row["python"].split(".") if x.isdigit())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("junit", nargs="*", type=Path, help="junit xml files")
    parser.add_argument("--run", action="append", default=[], metavar="PYTHON",
                        help="run the suite with this interpreter (repeatable)")
    args = parser.parse_args(argv)
    if not args.junit and not args.run:
        parser.error("give junit xml files or --run PYTHON")
    rows = [_counts(j) for j in args.junit] + [_run(p) for p in args.run]
    rows.sort(key=_version_key)
    print("\n".join(_tables(rows)))
    failures = [
        (r["python"], t) for r in rows for t, o in sorted(r["outcomes"].items()) if o == "failed"
    ]
    out: list[str] = []
    if failures:
        out += ["", "Failed:", ""]
        out += [f"* {version}: `{test_id}`" for version, test_id in failures]

    ex = _exclusions()
    out += ["", "Exclusions (generated from `tests/cpython/exclusions.py`):", "",
            "| test | reason |", "|---|---|"]
    for pattern, reason in ex.EXCLUSIONS.items():
        out.append(f"| `{pattern}` | {reason} |")
    per_version: dict[str, tuple[str, list[str]]] = {}
    for (major, minor), extra in sorted(ex.PER_VERSION.items()):
        for pattern, reason in extra.items():
            per_version.setdefault(pattern, (reason, []))[1].append(f"{major}.{minor}")
    for pattern, (reason, versions) in per_version.items():
        out.append(f"| `{pattern}` (CPython {', '.join(versions)} only) | {reason} |")
    print("\n".join(out))
    return 1 if failures else 0


def _classes(rows: list[dict]) -> set[str]:
    return {t.split(".", 1)[0] for r in rows for t in r["outcomes"]}


def _tables(rows: list[dict]) -> list[str]:
    out = [
        "| CPython | flavour | selected | passed | failed | excluded | skipped by the suite |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        present = {flavour_of(t.split(".", 1)[0]) for t in r["outcomes"]}
        for flavour in [f for f in FLAVOURS if f in present] + ["all"]:
            c = _tally(r["outcomes"], lambda cls, f=flavour: f in ("all", flavour_of(cls)))
            name = "**all**" if flavour == "all" else flavour
            out.append(
                f"| {r['python']} | {name} | {c['selected']} | {c['passed']} | "
                f"{c['failed']} | {c['excluded']} | {c['skipped']} |"
            )
    out += ["", "The issue's bar, per version:", ""]
    for r in rows:
        pmm = _tally(r["outcomes"], lambda cls: flavour_of(cls) in ("processes", "manager", "misc"))
        thr = _tally(r["outcomes"], lambda cls: flavour_of(cls) == "threads")
        fut = _tally(r["outcomes"], lambda cls: flavour_of(cls) == "futures")
        line = (
            f"* {r['python']}: processes+manager+misc {pmm['passed']} of {pmm['selected']} "
            f"passed; threads {thr['passed']} of {thr['selected'] - thr['skipped']} "
            f"not skipped by the suite passed"
        )
        if fut["selected"]:
            line += (
                f"; ProcessPoolExecutor {fut['passed']} of "
                f"{fut['selected'] - fut['skipped']} not skipped by the suite passed"
            )
        out.append(line)
    versions = [r["python"] for r in rows]
    out += [
        "",
        "Per area (passed/selected; the rest excluded or skipped by the suite, "
        "unless a failure is shown):",
        "",
        "| flavour | area | " + " | ".join(versions) + " |",
        "|---|---|" + "---:|" * len(versions),
    ]
    areas = sorted(
        {(flavour_of(c), area_of(c)) for c in _classes(rows)},
        key=lambda fa: (FLAVOURS.index(fa[0]), fa[1]),
    )
    for flavour, area in areas:
        cells = []
        for r in rows:
            key = (flavour, area)
            c = _tally(r["outcomes"], lambda cls, k=key: (flavour_of(cls), area_of(cls)) == k)
            if not c["selected"]:
                cells.append("-")
                continue
            cell = f"{c['passed']}/{c['selected']}"
            if c["failed"]:
                cell += f" ({c['failed']} failed)"
            cells.append(cell)
        out.append(f"| {flavour} | `{area}` | " + " | ".join(cells) + " |")
    return out


if __name__ == "__main__":
    sys.exit(main())
