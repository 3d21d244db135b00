#!/usr/bin/env bash
# Runs the workspace tests with the Python packages the engine tests need.
#
#   scripts/test.sh [CARGO TEST ARGS...]      e.g. scripts/test.sh -p optout --test snapshot_engines
#
# Creates (or reuses) a virtual environment, by default .venv-test in the repository
# (OPTOUT_TEST_VENV overrides), installs scripts/requirements-test.txt (and the service's
# API checkers, pinned below) into it when they changed, exports OPTOUT_TEST_PYTHON=<the venv's python> and runs
# `cargo test --workspace "$@"`. Needs Rust and Python 3 (with the venv module); with
# CI=true, as root on Debian, it installs python3-venv when that is missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${OPTOUT_TEST_VENV:-$repo/.venv-test}"
requirements="$repo/scripts/requirements-test.txt"
python="${PYTHON:-python3}"

say() { printf 'test.sh: %s\n' "$*" >&2; }

if ! command -v "$python" >/dev/null 2>&1; then
    say "$python not found: install Python 3 (Debian: apt-get install python3 python3-venv)"
    exit 1
fi

# `python3 -m venv` needs the venv and ensurepip modules; Debian ships them apart.
has_venv() { "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; }
if [ ! -x "$venv/bin/python" ] && ! has_venv; then
    if [ "${CI:-}" = "true" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        say "installing python3-venv"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    if ! has_venv; then
        version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || echo 3)"
        say "Python's venv module is missing. On Debian/Ubuntu: sudo apt-get install python3-venv (or python${version}-venv)"
        exit 1
    fi
fi

# A venv whose creation was interrupted has a python but no working pip: start over.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    say "creating $venv"
    "$python" -m venv --clear "$venv"
fi

stamp="$venv/.optout-requirements.sha256"
wanted="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    say "installing $(grep -cE '^[^#[:space:]]' "$requirements") packages from scripts/requirements-test.txt"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    printf '%s\n' "$wanted" > "$stamp"
fi
"$venv/bin/python" -c 'import duckdb, pyarrow, pyroaring, selenium'

# The service's API checks: crates/optout-server/tests/openapi.rs validates /openapi.json
# with openapi-spec-validator, tests/schemathesis.rs fuzzes the running server with
# schemathesis. Pinned here, installed when the pins change.
api_packages="schemathesis==4.32.5 openapi-spec-validator==0.9.0"
api_stamp="$venv/.optout-api-packages"
if [ ! -f "$api_stamp" ] || [ "$(cat "$api_stamp")" != "$api_packages" ]; then
    say "installing $api_packages"
    rm -f "$api_stamp"
    # shellcheck disable=SC2086 # one word per package
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $api_packages
    printf '%s\n' "$api_packages" > "$api_stamp"
fi
"$venv/bin/python" -c 'import schemathesis, openapi_spec_validator'

export OPTOUT_TEST_PYTHON="$venv/bin/python"
say "OPTOUT_TEST_PYTHON=$OPTOUT_TEST_PYTHON"
exec cargo test --workspace "$@"
