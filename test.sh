#!/usr/bin/env bash
# The README's test command: sets up what the tests need on a Debian machine with Rust, then runs
# every test of the workspace (`cargo test --workspace`, with any arguments given here).
#
# The tests drive real things, not mocks: the corpus browser's test runs Debian's headless
# Chromium through chromedriver; the NAT tests make network namespaces (iproute2) with kernel NAT
# (nftables), which needs root, and read the metrics of nodes inside them with curl; the tests of
# what outside tools see run Python (a virtual environment made here, from PyPI). What is missing
# is installed with apt-get when this runs as root
# (or with sudo, if it needs no password); otherwise the script says what to install and stops,
# rather than letting a test skip.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is missing: install Rust (https://rustup.rs, Rust 1.88 or later), then run ./test.sh again" >&2
  exit 1
fi

# command needed -> the Debian package that provides it
needs=(
  "chromium chromium"
  "chromedriver chromium-driver"
  "ip iproute2"
  "nft nftables"
  "curl curl"
  "python3 python3"
)

missing=()
for need in "${needs[@]}"; do
  read -r command package <<<"$need"
  if ! command -v "$command" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

# Debian keeps Python's venv module in a package of its own.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  missing+=("python3-venv")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "== test.sh: installing the Debian packages the tests need: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "test.sh: the tests need the Debian packages ${missing[*]}, and this user cannot install them" >&2
    echo "test.sh: run \`sudo apt-get install ${missing[*]}\` (or run ./test.sh as root), then ./test.sh again" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: apt-get is missing (not a Debian-like system): install ${missing[*]} with this system's package manager" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "test.sh: apt-get could not install ${missing[*]} (no network or no such package?); install them, then run ./test.sh again" >&2
    exit 1
  fi
fi

# The Python the tests run outside tools with (the protocol conformance check, DuckDB, pandas,
# jsonschema, pySHACL), from PyPI, in a virtual environment of its own: made again when the
# pinned requirements change.
venv=${CAILLOUX_VENV:-target/venv}
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "test.sh: the tests' Python packages need Python 3.11 or later; this python3 is $(python3 -V 2>&1)" >&2
  exit 1
fi
# Made again when the pinned requirements or the system's Python change.
wanted="$(python3 -VV 2>&1)
$(cat tests/python/requirements.txt conformance/requirements.txt)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$wanted" ]; then
  echo "== test.sh: making the Python environment the tests use ($venv, from tests/python/requirements.txt)"
  if ! python3 -m venv --clear "$venv"; then
    echo "test.sh: python3 cannot make a virtual environment in $venv: install python3-venv, then run ./test.sh again" >&2
    exit 1
  fi
  if ! "$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt; then
    echo "test.sh: pip could not install tests/python/requirements.txt into $venv (no access to PyPI?); fix that, then run ./test.sh again" >&2
    exit 1
  fi
  printf '%s' "$wanted" >"$venv/.requirements"
fi
export CAILLOUX_PYTHON="$venv/bin/python"

echo "== cargo test --workspace $*"
exec cargo test --workspace "$@"
