#!/usr/bin/env bash
# GPU check (issue 18): the training and evaluation steps measured on one GPU, everything under $OUT.
#
#   bash bench/gpu_check.sh           # one H100: <= 8 minutes in all (sized so a rerun fits 15 minutes)
#   bash bench/gpu_check.sh --tiny    # every shape and size shrunk: runs end to end on a CPU in < 1 minute
#
# $OUT: where everything goes (default ./gpu_check_out): one log and one JSON per check,
# summary.md / summary.json (the table printed at the end), work/ (models and data it built).
# $PYTHON: the interpreter (default: .venv/bin/python when present, else python).
#
# The checks (bench/gpu_check.py runs them in one process, so the ML imports are paid once):
# 1. bench/train_throughput.py at the Qwen2.5-0.5B shape (random init): the documents' recipe (HF Trainer +
#    PEFT, fp32, batch 4, DataCollatorForLanguageModeling, no packing), TRL's SFTTrainer (bf16, padding-free
#    packing, Liger kernels if installed) and our step, same examples and tokens; useful tokens/s, ratios,
#    MFU against the measured matmul peak, held-out loss after the same tokens. Then our step alone at the
#    1.5B shape.
# 2. bench/qlora_check.py: QLoRA (bitsandbytes NF4) short run of steps/train.py at the 0.5B shape; loss
#    decreasing, adapter saved, merged, reloaded, unmerged vs merged logits within tolerance.
# 3. bench/eval_throughput.py on the model check 2 trained: batched evaluator vs one call per case,
#    answers identical.
# 4. bench/packing_check.py: packed vs unpacked per-example loss of our step, equal within bf16 tolerance.
# What needs CUDA (bitsandbytes NF4) prints "skipped: needs CUDA" and the rest still runs; trl missing
# prints "trl-sft: skipped: trl is not installed" and the other recipes still run.
#
# Packages the GPU machine lacks (it reaches no registry): download wheels beforehand on a machine that
# does, matching the GPU machine's Python and platform, e.g.
#   pip download --only-binary=:all: --no-deps --python-version 3.11 --platform manylinux_2_28_x86_64 \
#       -d wheels/ trl==1.16.0 liger-kernel bitsandbytes
# check what the GPU machine already has (`pip list`) first, carry wheels/ along, and run with
#   WHEELS=wheels bash bench/gpu_check.sh
# which installs every wheel in $WHEELS (--no-index --no-deps) before the checks.
set -uo pipefail
cd "$(dirname "$0")/.."

TINY=()
for arg in "$@"; do
    case "$arg" in
        --tiny) TINY=(--tiny) ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $arg (use --tiny or --help)" >&2; exit 2 ;;
    esac
done

OUT="${OUT:-./gpu_check_out}"
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

if [ -n "${WHEELS:-}" ]; then
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    if [ ${#wheels[@]} -gt 0 ]; then
        echo "installing ${#wheels[@]} wheel(s) from $WHEELS" | tee "$OUT/wheels.log"
        "$PYTHON" -m pip install --no-index --no-deps "${wheels[@]}" >> "$OUT/wheels.log" 2>&1 \
            || echo "wheel install failed: see $OUT/wheels.log"
    fi
fi

"$PYTHON" -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.version.cuda}")' \
    > "$OUT/environment.txt" 2>&1
"$PYTHON" -m pip list --format=freeze >> "$OUT/environment.txt" 2>/dev/null
command -v nvidia-smi > /dev/null && nvidia-smi >> "$OUT/environment.txt" 2>&1

exec "$PYTHON" bench/gpu_check.py --out "$OUT" "${TINY[@]}"
