#!/usr/bin/env bash
# scripts/test-cpython-all.sh -- the slower CPython-suite job: CPython's own
# multiprocessing tests (tests/test_cpython_suite.py, every flavour, plus the
# ProcessPoolExecutor classes of test_concurrent_futures where the interpreter ships
# them) on every CPython 3.9-3.13 found. .ci/run runs the module on 3.9 and 3.13 only
# (scripts/test.sh's default IOS_MP_CPYTHON_SUITE="3.9 3.13"), to keep CI near 30 min.
# Writes dist/junit-3.X.xml; `python tests/cpython/report.py dist/junit-3.*.xml`
# prints docs/cpython-suite.md's tables from them.
#
# Usage: scripts/test-cpython-all.sh [extra pytest args...]
# Env:   IOS_MP_PYTHONS, IOS_MP_SKIP_BUILD=1 (reuse dist/), IOS_MP_CPYTHON_FUTURES (default
#        1 here: the futures classes on 3.10 too; .ci/run leaves it unset: 3.9, 3.13)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IOS_MP_CPYTHON_FUTURES="${IOS_MP_CPYTHON_FUTURES-1}" IOS_MP_CPYTHON_SUITE=all exec scripts/test.sh tests/test_cpython_suite.py "$@"
