"""Print the table of docs/cpython-suite.md: CPython's multiprocessing tests under ios_mp.

Usage (from the repository root)::

    python tests/cpython/report.py --run /path/to/venv-3.9/bin/python --run ...
    python tests/cpython/report.py dist/junit-3.*.xml

``--run PYTHON`` runs ``PYTHON -m pytest tests/test_cpython_suite.py`` (PYTHON must
have pytest, pytest-timeout and ios_mp installed) and reads its junit xml; a
positional argument is a junit xml file already written by such a run, or by
``scripts/test.sh`` (which writes ``dist/junit-3.X.xml`` for the whole test
suite; only this module's tests are counted). The output is Markdown: one row per
CPython version (selected / passed / failed / excluded / skipped by the suite
itself), the tests that failed, and the exclusion list with reasons, generated
from ``tests/cpython/exclusions.py``.
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


def _counts(junit: Path) -> dict:
    root = ET.parse(junit).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    row = {"python": props.get("cpython_suite_python", "?"), "selected": 0, "passed": 0,
           "failed": 0, "excluded": 0, "skipped": 0, "failures": []}
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        if not classname.startswith(MODULE + "."):
            continue  # this module's own checks (no class), or another test module
        test_id = f"{classname.rsplit('.', 1)[-1]}.{case.get('name')}"
        row["selected"] += 1
        tags = {child.tag: child for child in case}
        if "failure" in tags or "error" in tags:
            row["failed"] += 1
            row["failures"].append(test_id)
        elif "skipped" in tags:
            message = tags["skipped"].get("message", "")
            row["excluded" if message.startswith(EXCLUDED_PREFIX) else "skipped"] += 1
        else:
            row["passed"] += 1
    if row["selected"] == 0:
        raise SystemExit(f"{junit}: no test of {MODULE} in it")
    return row


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

    out = ["| CPython | selected | passed | failed | excluded | skipped by the suite |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['python']} | {r['selected']} | {r['passed']} | {r['failed']} | "
                   f"{r['excluded']} | {r['skipped']} |")
    failures = [(r["python"], t) for r in rows for t in r["failures"]]
    if failures:
        out += ["", "Failed:", ""]
        out += [f"* {version}: `{test_id}`" for version, test_id in failures]

    ex = _exclusions()
    out += ["", "Exclusions (generated from `tests/cpython/exclusions.py`):", "",
            "| test | reason |", "|---|---|"]
    for pattern, reason in ex.EXCLUSIONS.items():
        out.append(f"| `{pattern}` | {reason} |")
    for (major, minor), extra in sorted(ex.PER_VERSION.items()):
        for pattern, reason in extra.items():
            out.append(f"| `{pattern}` (CPython {major}.{minor} only) | {reason} |")
    print("\n".join(out))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
