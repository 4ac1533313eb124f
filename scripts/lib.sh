# Shared by the scripts: paths and the project virtualenv.  Source it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

# Creates .venv with the project (and its test extras) installed, and
# rebuilds it only when the packaging inputs change: the native sources
# (both cffi extensions), and the UTCP core that mypyc compiles (stacks/_compiled.py).
ensure_venv() {
    local stamp_file="$VENV/.multistack-stamp" stamp
    stamp=$(cd "$ROOT" && cat pyproject.toml setup.py multistack/native/* multistack/xdp_native/* xdp/*.h stacks/_compiled.py \
        stacks/utcp/*.py $(find kmod/include -name '*.h' 2>/dev/null | sort) 2>/dev/null \
        | sha256sum | cut -d' ' -f1)
    if [ -x "$PY" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    echo "setting up $VENV" >&2
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
    "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    echo "$stamp" >"$stamp_file"
}
