#!/usr/bin/env bash
# GPU smoke test of every multi-GPU configuration: train, kill mid-run, resume, finish.
#
#   bash scripts/gpu_smoke.sh                 # all configs on all visible GPUs
#   CONFIGS="ddp deepspeed-zero3" NPROC=2 bash scripts/gpu_smoke.sh
#   DTYPE=fp16 bash scripts/gpu_smoke.sh      # --dtype as --help spells it (auto | bf16 | fp16 | fp32)
#
# For each configs/accelerate/<name>.yaml: 20 optimizer steps of Qwen2.5-0.5B-Instruct
# (LoRA r16 q,k,v,o, bf16 or fp16) on a small `aldlab data build` set, a checkpoint every 5
# steps, SIGKILL after checkpoint-10 exists, then `--resume` to step 20. A config passes when
# the resumed run ends at step 20 with a final eval loss and an adapter. Run from the
# repository root (the DeepSpeed YAMLs name their JSON relative to it). Needs CUDA,
# `pip install deepspeed` for the ZeRO configs, and Hub access for the model (once).
# Takes a few minutes per config on one machine with 2+ GPUs.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
NPROC=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
CONFIGS=${CONFIGS:-"ddp deepspeed-zero2 deepspeed-zero3 fsdp"}
WORK=${WORK:-$(mktemp -d -t aldlab-gpu-smoke-XXXX)}
DTYPE=${DTYPE:-auto}
STEPS=20
KILL_AFTER=10

if ! python -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "CUDA GPU가 필요합니다 / this smoke test needs CUDA GPUs" >&2
  exit 2
fi
if [ "${NPROC:-0}" -lt 1 ]; then NPROC=1; fi
echo "model $MODEL, dtype $DTYPE, $NPROC process(es), work dir $WORK" >&2

aldlab data build -o "$WORK/data" --preset gpu-qwen7b >/dev/null

train() {  # train <config> <output dir> [extra flags...]
  local config=$1 out=$2
  shift 2
  accelerate launch --config_file "configs/accelerate/$config.yaml" --num_processes "$NPROC" \
    -m aldlab.cli train --model "$MODEL" --train-file "$WORK/data/train.jsonl" \
    --eval-file "$WORK/data/eval.jsonl" --output "$out" --max-steps "$STEPS" --save-steps 5 \
    --eval-steps 10 --batch-size 2 --gradient-accumulation-steps 2 --dtype "$DTYPE" \
    --max-train-examples 200 --quiet "$@"
}

declare -A RESULT
for config in $CONFIGS; do
  out="$WORK/$config"
  log="$WORK/$config.log"
  echo "== $config" >&2
  start=$(date +%s)
  set +e
  # Own process group, so the kill reaches every rank the launcher started.
  setsid bash -c "$(declare -f train); MODEL='$MODEL' NPROC='$NPROC' WORK='$WORK' STEPS='$STEPS' DTYPE='$DTYPE' train '$config' '$out'" \
    >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -f "$out/checkpoint-$KILL_AFTER/trainer_state.json" ]; do sleep 2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "   killed after checkpoint-$KILL_AFTER" >&2
  else
    wait "$pid"
    echo "   first run ended before the kill (exit $?): see $log" >&2
  fi
  train "$config" "$out" --resume >>"$log" 2>&1
  rc=$?
  set -e
  steps=$(python -c "import json,sys; m=json.load(open('$out/training_meta.json')); print(m['final']['steps'], m['final']['final_eval_loss'])" 2>/dev/null || echo "- -")
  took=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ] && [ "${steps%% *}" = "$STEPS" ] && [ -f "$out/adapter_model.safetensors" ]; then
    RESULT[$config]="OK   steps/eval_loss $steps  ${took}s"
  else
    RESULT[$config]="FAIL exit $rc, steps/eval_loss $steps, log $log"
  fi
done

echo
printf '%-18s %s\n' config result
status=0
for config in $CONFIGS; do
  printf '%-18s %s\n' "$config" "${RESULT[$config]}"
  case "${RESULT[$config]}" in FAIL*) status=1 ;; esac
done
exit $status
