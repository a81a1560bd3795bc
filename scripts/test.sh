#!/usr/bin/env bash
# scripts/test.sh -- the project's test command (the README points here).
#
# 1. Builds the abi3 wheel ONCE (maturin, in the build venv .venv-build) into dist/.
# 2. For each CPython 3.9 .. 3.13 found via pyenv (newest patch of each minor),
#    installs that wheel into .venv-test-3.X and runs pytest from the repo root
#    against the INSTALLED wheel (python/ is never put on sys.path).
# 3. Prints a per-version table and, as the very last line, the totals:
#        N passed, M failed[, K skipped]
#    CI reads that line. Exit status is non-zero if any version failed
#    (any pytest exit code other than 0; exit 5 "no tests collected" included)
#    or if no interpreter at all was found.
#
# Usage:   scripts/test.sh [extra pytest args...]      e.g. scripts/test.sh -k queue -x
# Env:
#   IOS_MP_PYTHONS="3.11 3.13"   only these minor versions (default: 3.9 3.10 3.11 3.12 3.13)
#   IOS_MP_SKIP_BUILD=1          reuse the wheel already in dist/ (no maturin build)
#   IOS_MP_ANSIBLE_CORE=2.18     test with ansible-core 2.18.x instead of the defaults (see
#                                ansible_deps; scripts/test-ansible-versions.sh)
#   IOS_MP_CPYTHON_SUITE="3.9 3.13"  the versions that run CPython's own multiprocessing
#                                suite (tests/test_cpython_suite.py, 3-5 min per version);
#                                "all" for every version (scripts/test-cpython-all.sh), ""
#                                for none. The other versions --ignore that module.
#   IOS_MP_E2E_LARGE="3.11"      the versions that run the Ansible e2e suite's 20-host case
#                                (hosts-20-f20, 1-2 min); "all" for every version. The other
#                                versions run its 5-host cases only.
#   IOS_MP_PYTEST_TIMEOUT=900    wall-clock limit in seconds for one version's pytest run,
#                                on top of pytest-timeout's per-test limit; catches hangs at
#                                interpreter shutdown (0 disables)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Test the installed wheel, never the source tree.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP

DEFAULT_VERSIONS="3.9 3.10 3.11 3.12 3.13"
MATURIN_SPEC="maturin>=1.10.2,<2"
TEST_DEPS=("pytest>=7" "pytest-timeout>=2.1")
BUILD_VENV=".venv-build"
CPYTHON_SUITE="${IOS_MP_CPYTHON_SUITE-3.9 3.13}"
E2E_LARGE="${IOS_MP_E2E_LARGE-3.11}"
PYTEST_WALL_TIMEOUT="${IOS_MP_PYTEST_TIMEOUT:-900}"

log()  { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

if command -v pyenv >/dev/null 2>&1; then
    PYENV_DIR="$(pyenv root)"
else
    PYENV_DIR="${PYENV_ROOT:-$HOME/.pyenv}"
fi

# Prints "X.Y" for a working CPython interpreter $1, nothing (and status 1) otherwise.
cpython_minor() {
    "$1" -c 'import sys
assert sys.implementation.name == "cpython"
print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# find_python 3.X: prints the path of the newest CPython 3.X.N under pyenv's versions/
# (exact X.Y.Z names only: no -dev, t (free-threaded), or virtualenv names), falling back
# to a real (non-shim) python3.X on PATH. Prints nothing if there is none.
find_python() {
    local minor=$1 name py
    if [ -d "$PYENV_DIR/versions" ]; then
        while IFS= read -r name; do
            py="$PYENV_DIR/versions/$name/bin/python$minor"
            if [ -x "$py" ] && [ "$(cpython_minor "$py")" = "$minor" ]; then
                printf '%s\n' "$py"
                return 0
            fi
        done < <(find "$PYENV_DIR/versions" -mindepth 1 -maxdepth 1 -printf '%f\n' \
                     | grep -E "^${minor//./\\.}\.[0-9]+\$" | sort -rV || true)
    fi
    py="$(command -v "python$minor" 2>/dev/null || true)"
    case "$py" in
        "" | */shims/*) ;;
        *) if [ "$(cpython_minor "$py")" = "$minor" ]; then printf '%s\n' "$py"; return 0; fi ;;
    esac
    return 0
}

# ensure_venv DIR PYTHON X.Y: reuse DIR if it is a working venv of CPython X.Y with pip,
# otherwise (re)create it. Returns non-zero on failure (safe to call under `if`).
ensure_venv() {
    local venv=$1 py=$2 minor=$3
    if [ -e "$venv" ]; then
        if [ "$(cpython_minor "$venv/bin/python")" = "$minor" ] \
            && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
            return 0
        fi
        log "recreating stale venv $venv"
        rm -rf "$venv" || return 1
    fi
    log "creating $venv with $py"
    "$py" -m venv "$venv" || return 1
}

# ---------------------------------------------------------------- interpreters
VERSIONS=()
read -r -a VERSIONS <<<"${IOS_MP_PYTHONS:-$DEFAULT_VERSIONS}"
[ "${#VERSIONS[@]}" -gt 0 ] || die "IOS_MP_PYTHONS is empty"
declare -A PY_FOR=()
FOUND=0
for v in "${VERSIONS[@]}"; do
    [[ "$v" =~ ^3\.[0-9]+$ ]] || die "bad version '$v' in IOS_MP_PYTHONS (want e.g. \"3.11 3.13\")"
    py="$(find_python "$v")"
    if [ -n "$py" ]; then
        PY_FOR[$v]="$py"
        FOUND=$((FOUND + 1))
    else
        warn "CPython $v not found (looked in $PYENV_DIR/versions and PATH); skipping it"
    fi
done
[ "$FOUND" -gt 0 ] || die "none of the requested CPython versions (${VERSIONS[*]}) is installed"

# ---------------------------------------------------------------- wheel
mkdir -p dist
if [ "${IOS_MP_SKIP_BUILD:-0}" = 1 ]; then
    log "IOS_MP_SKIP_BUILD=1: reusing the wheel in dist/"
else
    build_py="$(find_python 3.11)"
    if [ -z "$build_py" ]; then
        build_py="$(command -v python3 || true)"
        [ -n "$build_py" ] || die "no python3 to build the wheel with"
    fi
    build_minor="$(cpython_minor "$build_py")" || die "$build_py is not a working CPython"
    ensure_venv "$BUILD_VENV" "$build_py" "$build_minor" || die "could not create $BUILD_VENV"
    log "installing $MATURIN_SPEC into $BUILD_VENV"
    "$BUILD_VENV/bin/python" -m pip install -q "$MATURIN_SPEC" || die "pip install maturin failed"
    rm -f dist/*.whl
    log "maturin build --release --out dist/"
    "$BUILD_VENV/bin/maturin" build --release --out dist --interpreter "$BUILD_VENV/bin/python" \
        || die "wheel build failed"
fi
shopt -s nullglob
WHEELS=(dist/*.whl)
shopt -u nullglob
[ "${#WHEELS[@]}" -gt 0 ] || die "no wheel in dist/ (run without IOS_MP_SKIP_BUILD=1 to build one)"
[ "${#WHEELS[@]}" -eq 1 ] || die "expected exactly one wheel in dist/, found: ${WHEELS[*]}"
WHEEL="${WHEELS[0]}"
case "$(basename "$WHEEL")" in
    *-abi3-*) ;;
    *) die "$WHEEL is not an abi3 wheel; one wheel must serve every CPython version" ;;
esac
log "wheel: $WHEEL"

# ---------------------------------------------------------------- tests
TIMEOUT_CMD=()
if [ "$PYTEST_WALL_TIMEOUT" != 0 ] && command -v timeout >/dev/null 2>&1; then
    TIMEOUT_CMD=(timeout --foreground --kill-after=30 "$PYTEST_WALL_TIMEOUT")
fi

# Prints "passed failed skipped" from a pytest junit xml ($2) using python $1.
# failed = failures + errors (collection/fixture errors count as failures).
junit_counts() {
    "$1" - "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
passed = failed = skipped = 0
for suite in root.iter("testsuite"):
    failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped += int(suite.get("skipped", 0))
    for case in suite.iter("testcase"):
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            passed += 1
print(passed, failed, skipped)
PY
}

# ansible_deps 3.X: the ansible-core + paramiko the Ansible e2e suite (tests/test_ansible_e2e.py)
# runs with: 2.19.x on 3.11, 2.20.x on 3.13 (2.21 removed paramiko_ssh), and Toga for the
# Briefcase example's tests; nothing elsewhere.
# IOS_MP_ANSIBLE_CORE=2.N: ansible-core 2.N.x on every version run instead (in venvs of
# their own, .venv-test-3.X-ansible2.N; scripts/test-ansible-versions.sh uses it).
ansible_deps() {
    if [ -n "${IOS_MP_ANSIBLE_CORE:-}" ]; then
        echo "ansible-core==${IOS_MP_ANSIBLE_CORE}.* paramiko"
        return
    fi
    case "$1" in
        3.11) echo "ansible-core>=2.19,<2.20 paramiko $TOGA_DEPS" ;;
        3.13) echo "ansible-core>=2.20,<2.21 paramiko $TOGA_DEPS" ;;
    esac
}
# The Briefcase example's tests (tests/test_briefcase_example.py) run its Toga app on
# Toga's dummy backend; toga 0.5 needs CPython 3.11+.
TOGA_DEPS="toga-core toga-dummy"

# run_version 3.X [pytest args...]: sets P F S (counts), RC (pytest's exit code, or
# "setup" if the venv could not be prepared) and NOTE.
run_version() {
    local v=$1
    shift
    local py="${PY_FOR[$v]}" venv="$ROOT/.venv-test-$v" junit="dist/junit-$v.xml" loc counts
    if [ -n "${IOS_MP_ANSIBLE_CORE:-}" ]; then
        venv="$venv-ansible$IOS_MP_ANSIBLE_CORE" junit="dist/junit-$v-ansible$IOS_MP_ANSIBLE_CORE.xml"
    fi
    P=0 F=0 S=0 RC=0 NOTE=""
    log "CPython $v ($py)"
    if ! ensure_venv "$venv" "$py" "$v" \
        || ! "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEEL" \
        || ! "$venv/bin/python" -m pip install -q "${TEST_DEPS[@]}" $(ansible_deps "$v"); then
        RC=setup F=1 NOTE="could not prepare $venv; counted as 1 failure"
        return 0
    fi
    # Same sys.path as `python -m pytest` from the repo root gets: cwd first.
    loc="$("$venv/bin/python" -c 'import os, ios_mp
print(os.path.realpath(os.path.dirname(ios_mp.__file__)))' 2>/dev/null || true)"
    case "$loc" in
        "") warn "ios_mp does not import in $venv; running pytest anyway to show why" ;;
        "$(realpath "$venv")"/*) ;;
        *)
            RC=setup F=1 NOTE="ios_mp imports from $loc, not from the installed wheel; counted as 1 failure"
            return 0
            ;;
    esac
    rm -f "$junit"
    local extra=()
    if [ "$CPYTHON_SUITE" != all ] && [[ " $CPYTHON_SUITE " != *" $v "* ]]; then
        log "CPython's multiprocessing suite not run on $v (IOS_MP_CPYTHON_SUITE=\"$CPYTHON_SUITE\")"
        extra=(--ignore "$ROOT/tests/test_cpython_suite.py")
    fi
    local skip_large=0
    if [ "$E2E_LARGE" != all ] && [[ " $E2E_LARGE " != *" $v "* ]]; then
        skip_large=1
    fi
    # -c/--rootdir pin pyproject.toml's [tool.pytest.ini_options] (testpaths, addopts, timeout).
    IOS_MP_SKIP_LARGE_E2E=$skip_large "${TIMEOUT_CMD[@]}" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        -c "$ROOT/pyproject.toml" --rootdir "$ROOT" --junitxml "$junit" \
        ${extra[@]+"${extra[@]}"} "$@" || RC=$?
    if [ -s "$junit" ] && counts="$(junit_counts "$venv/bin/python" "$junit")"; then
        read -r P F S <<<"$counts"
    else
        NOTE="no junit results"
    fi
    case "$RC" in
        0) ;;
        5) NOTE="pytest exit 5: no tests collected" ;;
        124 | 137) NOTE="pytest killed after ${PYTEST_WALL_TIMEOUT}s wall-clock limit (exit $RC)${NOTE:+; $NOTE}" ;;
        *) NOTE="pytest exit $RC${NOTE:+; $NOTE}" ;;
    esac
    if [ "$RC" != 0 ] && [ "$F" -eq 0 ]; then
        F=1
        NOTE="$NOTE; counted as 1 failure"
    fi
    return 0
}

TOTAL_P=0 TOTAL_F=0 TOTAL_S=0
ANY_FAILED=0
SUMMARY=()
for v in "${VERSIONS[@]}"; do
    if [ -z "${PY_FOR[$v]:-}" ]; then
        SUMMARY+=("$v: MISSING (CPython $v not installed; skipped, not counted)")
        continue
    fi
    start=$SECONDS
    run_version "$v" "$@"
    secs=$((SECONDS - start))
    line="$v: $P passed, $F failed, $S skipped  [${secs}s]"
    if [ "$RC" != 0 ]; then
        ANY_FAILED=1
        line="$line  FAILED ($NOTE)"
    elif [ -n "$NOTE" ]; then
        line="$line  ($NOTE)"
    fi
    SUMMARY+=("$line")
    TOTAL_P=$((TOTAL_P + P)) TOTAL_F=$((TOTAL_F + F)) TOTAL_S=$((TOTAL_S + S))
done

echo
echo "==================== ios_mp test summary ($(basename "$WHEEL")) ===================="
printf '%s\n' "${SUMMARY[@]}"
echo
FINAL="$TOTAL_P passed, $TOTAL_F failed"
if [ "$TOTAL_S" -gt 0 ]; then FINAL="$FINAL, $TOTAL_S skipped"; fi
echo "$FINAL"
exit "$ANY_FAILED"
