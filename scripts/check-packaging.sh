#!/usr/bin/env bash
# scripts/check-packaging.sh -- what of the packaging can be checked on a Linux machine
# (.ci/run calls it; docs/packaging.md says what only the hosted runners of
# .github/workflows/wheels.yml can check):
#
#   1. cibuildwheel (pinned, own venv): pyproject.toml's [tool.cibuildwheel] parses, every
#      per-identifier option resolves, and `cibuildwheel --print-build-identifiers
#      --platform P --archs A` lists exactly the expected identifiers for linux, macos,
#      windows, ios and android (explicit --archs: "auto" means "what this machine runs",
#      which for ios/macos/windows on Linux is nothing or only x86_64). The iOS/Android
#      test commands have the form those platforms accept (`python -m ...`, no placeholders).
#   2. sdist (maturin sdist) and abi3 wheel (maturin build --release); `twine check --strict`
#      of both; the sdist holds no compiled artefact; the wheel carries py.typed and _core.pyi
#      and passes `abi3audit --strict` (as cibuildwheel's audit step runs it).
#   3. the sdist builds with plain `pip install` in a fresh venv holding only pip (maturin
#      comes from PyPI through build isolation, Rust from PATH), and the installed package
#      passes scripts/packaging_smoke.py, run from outside the source tree.
#   4. typed API, against the installed wheel: `mypy --strict examples/` and
#      `python -m mypy.stubtest ios_mp`, on 3.11 and (if pyenv has it) 3.13; the mypy
#      configs and the stubtest allowlists, each entry with its reason, are in
#      scripts/typecheck/.
#
# Never writes into the source tree: everything goes to $IOS_MP_PACKAGING_DIR
# (default ${TMPDIR:-/tmp}/ios_mp-packaging), including CARGO_TARGET_DIR.
#
# Speed: the two Rust builds use the release profile with LTO off and 16 codegen units
# (CARGO_PROFILE_RELEASE_* env overrides; what is checked here is packaging, not the
# optimised binary). IOS_MP_PACKAGING_FULL_RELEASE=1 keeps Cargo.toml's profile.
#
# Env knobs:
#   IOS_MP_PACKAGING_DIR=DIR         work dir (venvs, target dirs, dist/)
#   IOS_MP_PACKAGING_FULL_RELEASE=1  build with Cargo.toml's [profile.release] (lto = "fat")
#   IOS_MP_PACKAGING_PYTHON=PATH     interpreter for the venvs (default: pyenv's newest 3.11)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
export PATH
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP

CIBW_SPEC="cibuildwheel==4.3.5"
MATURIN_SPEC="maturin>=1.10.2,<2" # = pyproject.toml [build-system] requires
TWINE_SPEC="twine==7.0.0"
ABI3AUDIT_SPEC="abi3audit==0.0.26" # what cibuildwheel runs on every abi3 wheel it builds
MYPY_SPEC="mypy==2.4.1"
WORK="${IOS_MP_PACKAGING_DIR:-${TMPDIR:-/tmp}/ios_mp-packaging}"
DIST="$WORK/dist"
TYPECHECK="$ROOT/scripts/typecheck"

export CARGO_TARGET_DIR="$WORK/target"
export CARGO_INCREMENTAL=0 CARGO_TERM_PROGRESS_WHEN=never
if [ "${IOS_MP_PACKAGING_FULL_RELEASE:-0}" != 1 ]; then
    export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi

T0=$SECONDS
STEP=""
STEP_START=0
TIMES=()
step() {
    if [ -n "$STEP" ]; then TIMES+=("$(printf '%5ds  %s' "$((SECONDS - STEP_START))" "$STEP")"); fi
    STEP=$1
    STEP_START=$SECONDS
    if [ -n "$STEP" ]; then printf '\n---- packaging: %s\n' "$STEP"; fi
}
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}
on_exit() {
    local rc=$?
    if [ -n "$STEP" ] && [ "$rc" -ne 0 ]; then
        TIMES+=("$(printf '%5ds  %s  FAILED' "$((SECONDS - STEP_START))" "$STEP")")
    fi
    echo
    echo "---- packaging timings"
    printf '%s\n' "${TIMES[@]}"
    printf '%5ds  total\n' "$((SECONDS - T0))"
    if [ "$rc" -eq 0 ]; then echo "packaging checks OK"; else echo "packaging checks FAILED (exit $rc)"; fi
    exit "$rc"
}
trap on_exit EXIT

base_python() {
    local py="${IOS_MP_PACKAGING_PYTHON:-}"
    if [ -z "$py" ]; then
        py="$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -mindepth 3 -maxdepth 3 \
            -path '*/3.11.*/bin/python3.11' 2>/dev/null | sort -V | tail -n1 || true)"
    fi
    if [ -z "$py" ]; then py="$(command -v python3.11 || command -v python3)"; fi
    printf '%s\n' "$py"
}
PY="$(base_python)"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || die "$PY: cibuildwheel 4.x needs Python >= 3.11 (set IOS_MP_PACKAGING_PYTHON)"

# venv DIR [fresh]: a working venv at DIR (recreated if broken, or always with "fresh").
venv() {
    if [ "${2:-}" = fresh ] || ! "$1/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$1"
        "$PY" -m venv "$1"
    fi
}

mkdir -p "$WORK"
echo "work dir: $WORK (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
echo "python: $PY ($("$PY" --version))"
if [ "${IOS_MP_PACKAGING_FULL_RELEASE:-0}" != 1 ]; then
    echo "release profile overridden: LTO off, 16 codegen units (IOS_MP_PACKAGING_FULL_RELEASE=1: Cargo.toml's)"
fi

# ---------------------------------------------------------------- 1. cibuildwheel
step "cibuildwheel configuration ($CIBW_SPEC)"
venv "$WORK/venv-cibw"
"$WORK/venv-cibw/bin/python" -m pip install -q "$CIBW_SPEC"
CIBW="$WORK/venv-cibw/bin/cibuildwheel"
"$CIBW" --help >/dev/null

# check_ids PLATFORM ARCHS EXPECTED...: --print-build-identifiers lists exactly EXPECTED.
check_ids() {
    local platform=$1 archs=$2 got want
    shift 2
    got="$(cd "$ROOT" && env -u CIBW_BUILD -u CIBW_SKIP -u CIBW_ARCHS \
        "$CIBW" --print-build-identifiers --platform "$platform" --archs "$archs" | sort)"
    want="$(printf '%s\n' "$@" | sort)"
    if [ "$got" != "$want" ]; then
        printf 'cibuildwheel --platform %s --archs %s lists:\n%s\nexpected:\n%s\n' \
            "$platform" "$archs" "$got" "$want" >&2
        return 1
    fi
    printf '  %-8s %-55s -> %s\n' "$platform" "--archs $archs" "$(tr '\n' ' ' <<<"$got")"
}
check_ids linux x86_64,aarch64 \
    cp39-manylinux_x86_64 cp39-manylinux_aarch64 cp39-musllinux_x86_64 cp39-musllinux_aarch64
check_ids macos x86_64,arm64 cp39-macosx_x86_64 cp39-macosx_arm64
check_ids windows AMD64 cp39-win_amd64
check_ids ios arm64_iphoneos,arm64_iphonesimulator,x86_64_iphonesimulator \
    cp313-ios_arm64_iphoneos cp313-ios_arm64_iphonesimulator cp313-ios_x86_64_iphonesimulator
check_ids android arm64_v8a,x86_64 cp313-android_arm64_v8a cp313-android_x86_64
# What the workflow's runners get with the default archs ("auto"): an x86_64 Linux runner.
if [ "$(uname -m)" = x86_64 ]; then
    check_ids linux auto cp39-manylinux_x86_64 cp39-musllinux_x86_64
    check_ids android auto cp313-android_x86_64
fi

# Every option, resolved per identifier as cibuildwheel's build would, plus the rules the
# mobile testbeds impose on test-command (cibuildwheel enforces them only at test time, on
# the runner).
(cd "$ROOT" && "$WORK/venv-cibw/bin/python" - <<'PY'
import os
import shlex
from pathlib import Path

from cibuildwheel.options import CommandLineArguments, compute_options

WANT = {
    "linux": ("x86_64,aarch64", 4),
    "macos": ("x86_64,arm64", 2),
    "windows": ("AMD64", 1),
    "ios": ("arm64_iphoneos,arm64_iphonesimulator,x86_64_iphonesimulator", 3),
    "android": ("arm64_v8a,x86_64", 2),
}
env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
for platform, (archs, count) in WANT.items():
    args = CommandLineArguments.defaults()
    args.platform = platform
    args.archs = archs
    args.package_dir = Path(".")
    options = compute_options(platform=platform, command_line_arguments=args, env=env)
    from cibuildwheel.__main__ import ALL_PLATFORM_MODULES, get_build_identifiers

    ids = get_build_identifiers(
        platform_module=ALL_PLATFORM_MODULES[platform],
        build_selector=options.globals.build_selector,
        architectures=options.globals.architectures,
    )
    assert len(ids) == count, (platform, ids)
    for ident in ids:
        bo = options.build_options(ident)
        cmd = bo.test_command or ""
        assert cmd, f"{ident}: no test-command"
        if platform in ("ios", "android"):
            words = shlex.split(cmd)
            assert words[:2] == ["python", "-m"], f"{ident}: test-command must be python -m ..."
            assert "{project}" not in cmd and "{package}" not in cmd, f"{ident}: placeholder"
            assert bo.test_sources, f"{ident}: {platform} needs test-sources"
            assert "not no_sandbox" in cmd, f"{ident}: process-starting tests not deselected"
            for src in bo.test_sources:
                assert Path(src).exists(), f"{ident}: test-source {src} missing"
        if platform == "ios":
            assert bo.xbuild_tools and {"cargo", "rustc", "maturin"} <= set(bo.xbuild_tools), ident
            assert bo.build_frontend.name == "build", ident
            assert "--no-isolation" in bo.build_frontend.args, ident
            assert bo.before_build and "maturin" in bo.before_build, ident
            envd = bo.environment.as_dictionary({})
            assert envd.get("IPHONEOS_DEPLOYMENT_TARGET") == "13.0", envd
        if platform == "linux":
            assert "rustup" in bo.before_all, ident
        print(f"  {ident:36} frontend={bo.build_frontend.name:5} test: {cmd[:60]}")
print("  options resolve for every identifier")
PY
)

# ---------------------------------------------------------------- 2. sdist + wheel
step "maturin sdist + maturin build --release (abi3 wheel), twine check, abi3audit"
venv "$WORK/venv-tools"
"$WORK/venv-tools/bin/python" -m pip install -q "$MATURIN_SPEC" "$TWINE_SPEC" "$ABI3AUDIT_SPEC"
rm -rf "$DIST"
mkdir -p "$DIST"
"$WORK/venv-tools/bin/maturin" sdist --out "$DIST"
"$WORK/venv-tools/bin/maturin" build --release --out "$DIST" \
    --interpreter "$WORK/venv-tools/bin/python"
shopt -s nullglob
SDISTS=("$DIST"/*.tar.gz)
WHEELS=("$DIST"/*.whl)
shopt -u nullglob
[ "${#SDISTS[@]}" -eq 1 ] || die "expected one sdist in $DIST, found ${SDISTS[*]:-none}"
[ "${#WHEELS[@]}" -eq 1 ] || die "expected one wheel in $DIST, found ${WHEELS[*]:-none}"
SDIST="${SDISTS[0]}"
WHEEL="${WHEELS[0]}"
case "$(basename "$WHEEL")" in
    *-cp39-abi3-*) ;;
    *) die "$(basename "$WHEEL") is not a cp39-abi3 wheel" ;;
esac
if grep -E '\.(so|pyd|dylib)$' <<<"$(tar tzf "$SDIST")"; then
    die "the sdist contains compiled files (above)"
fi
# (listing captured first: `... | grep -q` under pipefail fails when grep exits early)
listing="$("$WORK/venv-tools/bin/python" -m zipfile -l "$WHEEL")"
for f in py.typed _core.pyi __init__.pyi; do
    grep -q "^ios_mp/$f " <<<"$listing" || die "the wheel lacks ios_mp/$f"
done
"$WORK/venv-tools/bin/twine" check --strict "$SDIST" "$WHEEL"
"$WORK/venv-tools/bin/abi3audit" --strict --summary "$WHEEL"

# ---------------------------------------------------------------- 3. sdist with pip
step "pip install <sdist> in a fresh venv (build isolation: maturin from PyPI), smoke test"
venv "$WORK/venv-sdist" fresh
# Same CARGO_TARGET_DIR as step 2: the crates.io dependencies compiled there are reused
# (they are the same sources either way), ios_mp itself is compiled from the unpacked sdist.
"$WORK/venv-sdist/bin/python" -m pip install -q --no-cache-dir "$SDIST"
(cd "$WORK" && "$WORK/venv-sdist/bin/python" "$ROOT/scripts/packaging_smoke.py")

# ---------------------------------------------------------------- 4. typed API
# typing_venv DIR PYTHON: DIR with mypy, pytest and the wheel (pytest: ios_mp.pytest_plugin
# imports it, and stubtest imports every module); checks ios_mp imports from DIR.
typing_venv() {
    local dir=$1 loc
    if ! "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$dir"
        "$2" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install -q "$MYPY_SPEC" "pytest>=7"
    "$dir/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEEL"
    loc="$(cd "$WORK" && "$dir/bin/python" -c 'import ios_mp, os; print(os.path.realpath(ios_mp.__file__))')"
    case "$loc" in
        "$(realpath "$WORK")"/*) ;;
        *) die "ios_mp imports from $loc, not from the wheel installed in $dir" ;;
    esac
}
# run_stubtest DIR: stubtest with the common allowlist plus the one for DIR's Python.
run_stubtest() {
    local dir=$1 minor extra=()
    minor="$("$dir/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [ -f "$TYPECHECK/stubtest-allowlist-py$minor.txt" ]; then
        extra=(--allowlist "$TYPECHECK/stubtest-allowlist-py$minor.txt")
    fi
    echo "stubtest on CPython $minor:"
    (cd "$WORK" && "$dir/bin/python" -m mypy.stubtest ios_mp \
        --mypy-config-file "$TYPECHECK/mypy-stubtest.ini" \
        --allowlist "$TYPECHECK/stubtest-allowlist.txt" "${extra[@]}")
}

step "mypy --strict examples/ + stubtest ios_mp (installed wheel)"
typing_venv "$WORK/venv-typing" "$PY"
"$WORK/venv-typing/bin/python" -m pip install -q -r "$TYPECHECK/examples-requirements.txt"
# From $WORK, so that neither the source tree nor a stray mypy config is in reach.
MYPY_CACHE=(--cache-dir "$WORK/mypy-cache")
(cd "$WORK" && "$WORK/venv-typing/bin/python" -m mypy --strict "${MYPY_CACHE[@]}" \
    --config-file "$TYPECHECK/mypy-examples.ini" "$ROOT/examples")
run_stubtest "$WORK/venv-typing"
# Also on 3.13, the CPython of the iOS and Android wheels, when pyenv has one.
PY313="$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -mindepth 3 -maxdepth 3 \
    -path '*/3.13.*/bin/python3.13' 2>/dev/null | sort -V | tail -n1 || true)"
if [ -n "$PY313" ] && [ "$("$PY" -c 'import sys; print(sys.version_info[:2])')" != "(3, 13)" ]; then
    typing_venv "$WORK/venv-typing-3.13" "$PY313"
    run_stubtest "$WORK/venv-typing-3.13"
fi
# Information only (see mypy-stubtest.ini): what mypy says of the implementation bodies.
impl="$(cd "$WORK" && "$WORK/venv-typing/bin/python" -m mypy "${MYPY_CACHE[@]}" \
    --config-file "$TYPECHECK/mypy-examples.ini" --ignore-missing-imports -p ios_mp 2>&1 \
    | tail -n1 || true)"
echo "info (not a failure): mypy -p ios_mp on the implementation: $impl"
step ""
