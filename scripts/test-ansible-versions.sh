#!/usr/bin/env bash
# scripts/test-ansible-versions.sh -- the slower Ansible job (not part of .ci/run, which
# tests ansible-core 2.19.x on CPython 3.11 and 2.20.x on 3.13): the Ansible suites
# (tests/test_ansible_e2e.py, tests/test_ansible_compat.py) with each older ansible-core
# that still ships paramiko_ssh, on CPython 3.11, through scripts/test.sh (one wheel,
# built on the first round, reused after; each version in its own venv
# .venv-test-3.11-ansible2.N). Needs what .ci/run installs (openssh-server, root for the
# sshd fixture's test user). Prints scripts/test.sh's summary per version and exits
# non-zero if any failed.
#
# Usage: scripts/test-ansible-versions.sh [extra pytest args...]
# Env:   IOS_MP_ANSIBLE_VERSIONS="2.16 2.17 2.18" (default), IOS_MP_SKIP_BUILD=1 (reuse dist/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rc=0
skip_build="${IOS_MP_SKIP_BUILD:-0}"
for v in ${IOS_MP_ANSIBLE_VERSIONS:-2.16 2.17 2.18}; do
    echo "==================== ansible-core $v.x on CPython 3.11 ===================="
    IOS_MP_PYTHONS=3.11 IOS_MP_ANSIBLE_CORE="$v" IOS_MP_SKIP_BUILD="$skip_build" \
        scripts/test.sh tests/test_ansible_e2e.py tests/test_ansible_compat.py "$@" || rc=1
    skip_build=1
done
exit "$rc"
