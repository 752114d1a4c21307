#!/usr/bin/env bash
# Build Postyard as one executable: dist/postyard (PyInstaller, build/postyard.spec).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv: run python3 -m venv .venv && .venv/bin/pip install -e '.[build]'" >&2; exit 1; }
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  .venv/bin/pip install -q -e '.[build]'
fi
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/out build/postyard.spec
end=$(date +%s)
size=$(stat -c %s dist/postyard)
echo "built dist/postyard: $((size / 1024 / 1024)) MB ($size bytes) in $((end - start)) s"
