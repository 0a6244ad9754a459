#!/usr/bin/env bash
# The serving image's Python packages in a virtualenv of their own, for tests/test_serving_compat.py:
# the transformers version containers/images.yaml records for the serving image, on this machine's CPU
# build of torch (the image's CUDA build cannot be installed here). The README's test command runs it.
#   containers/serving/make_test_env.sh DIR      (default DIR: .venv/serving; PYTHON: the dev venv's python)
# Skips the install when DIR already holds exactly these pins.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-$repo/.venv/serving}"
python="${PYTHON:-$repo/.venv/bin/python}"
pins="$(cd "$repo" && "$python" -m pipelines.images serving-test-requirements)"
stamp="$dir/continuum-pins.txt"
if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$pins" ]]; then
  echo "serving test environment up to date: $dir"
  exit 0
fi
rm -rf "$dir"
python3 -m venv "$dir"
printf '%s\n' "$pins" >"$dir/requirements.txt"
"$dir/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
printf '%s' "$pins" >"$stamp"
echo "serving test environment ready: $dir ($(tr '\n' ' ' <"$dir/requirements.txt"))"
