#!/usr/bin/env bash
# checkov in a virtualenv of its own, for tests/test_infra.py: every checkov 3.x pins boto3==1.35.49 and
# packaging<24, which sagemaker (boto3>=1.42.2) and pytest (packaging>=24) refuse, so it cannot share .venv.
# The README's test command runs it.   infra/make_checkov_env.sh DIR   (default DIR: .venv/checkov)
# Skips the install when DIR already holds this version.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$repo/.venv/checkov}"
pin="checkov==3.3.30"
stamp="$dir/continuum-pins.txt"
if [[ -x "$dir/bin/checkov" && -f "$stamp" && "$(cat "$stamp")" == "$pin" ]]; then
  echo "checkov environment up to date: $dir"
  exit 0
fi
rm -rf "$dir"
python3 -m venv "$dir"
"$dir/bin/pip" install -q --disable-pip-version-check "$pin" 2> >(grep -v "^WARNING: Location" >&2)
printf '%s' "$pin" >"$stamp"
echo "checkov environment ready: $dir ($pin)"
