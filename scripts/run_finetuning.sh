#!/usr/bin/env bash
# Kept for users of the old layout: the old run_finetuning.sh prepared data, fine-tuned
# and evaluated. It now runs `aldlab pipeline` with the seed's defaults:
#   CUDA GPU present -> preset gpu-qwen7b (Qwen/Qwen2.5-7B-Instruct, r16/alpha32, 3 epochs, bs 4, lr 2e-4)
#   CPU only         -> preset cpu-demo (embedded google/gemma-3-270m)
# The old environment variables still work and override the preset:
#   MODEL_NAME NUM_EPOCHS BATCH_SIZE LEARNING_RATE OUTPUT_DIR KB_FILE
# Extra arguments go to `aldlab pipeline` (e.g. --force).
set -euo pipefail

if [ -z "${PRESET:-}" ]; then
  if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    PRESET=gpu-qwen7b
  else
    PRESET=cpu-demo
  fi
fi

overrides=$(mktemp --suffix=.yaml)
trap 'rm -f "$overrides"' EXIT
{
  echo "train:"
  [ -n "${MODEL_NAME:-}" ] && echo "  model_name: \"${MODEL_NAME}\""
  [ -n "${NUM_EPOCHS:-}" ] && echo "  num_epochs: ${NUM_EPOCHS}"
  [ -n "${BATCH_SIZE:-}" ] && echo "  batch_size: ${BATCH_SIZE}"
  [ -n "${LEARNING_RATE:-}" ] && echo "  learning_rate: ${LEARNING_RATE}"
  true
} > "$overrides"

args=(pipeline --preset "$PRESET" --config "$overrides")
[ -n "${OUTPUT_DIR:-}" ] && args+=(--run-dir "$OUTPUT_DIR")
[ -n "${KB_FILE:-}" ] && args+=(--kb "$KB_FILE")

echo "aldlab ${args[*]} $*" >&2
exec aldlab "${args[@]}" "$@"
