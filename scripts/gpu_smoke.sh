#!/usr/bin/env bash
# GPU smoke test: run once on a CUDA machine to check the whole GPU path end to end.
#
#   bash scripts/gpu_smoke.sh                                   # Qwen/Qwen2.5-7B-Instruct (the seed's model)
#   bash scripts/gpu_smoke.sh --model Qwen/Qwen2.5-0.5B-Instruct  # a quick check (a few minutes on one H100)
#   bash scripts/gpu_smoke.sh --dry-run                         # print the commands only (no GPU needed)
#
# Stages, each a row of the PASS/FAIL table at the end (also written to WORK/results.json):
#   cuda      CUDA, the GPU, its compute capability, bitsandbytes
#   data      aldlab data build (gpu-qwen7b preset, a small set)
#   qlora     4-bit QLoRA of the seed recipe through --preset gpu-qwen7b-qlora (gradient
#             checkpointing on) with the seed's flags (--model_name --train_file --eval_file
#             --output_dir --num_epochs --batch_size --learning_rate --save_inference_only),
#             --steps optimizer steps unbroken; tokens/s, peak GPU memory, generation check
#   resume    the same run SIGKILLed after checkpoint-K and continued with --resume: passes when
#             the second process resumed (did not start over) and its step losses after K match
#             the unbroken run's
#   lora-bf16 bf16 LoRA through --preset gpu-qwen7b (no 4-bit), tokens/s and peak memory
#   reload    the saved adapter reloaded with PEFT: finite, non-zero LoRA B, logits differ from
#             the base; then compared with the merged model's logits
#   ask       aldlab ask with the adapter answers (JSON)
#   eval      aldlab eval of ft and ft+rag on a few questions (metrics.json)
#   export    aldlab export --merge: the base's EOS ids kept, bf16 from Ampere on (fp16 before),
#             the merged model answers with aldlab ask
#   vllm      with vLLM installed (or --llm-url URL of a vLLM already serving this adapter as
#             --lora-name): vllm serve --enable-lora, /v1/models and /v1/chat/completions
#             checked as JSON, then aldlab serve --llm-url in front of it, its OpenAI API checked
#   multi-gpu with more than one GPU: every configs/accelerate/*.yaml (DDP, ZeRO-2, ZeRO-3,
#             FSDP) trains bf16 LoRA, is killed after checkpoint-K and resumed to the end
#
# Needs CUDA, `pip install -e .[gpu]` (bitsandbytes; deepspeed for ZeRO), Hub access for
# the model (once), and optionally vllm. Run from the repository root (the DeepSpeed YAMLs
# name their JSON relative to it). Exit status: 0 all passed, 1 a stage failed, 2 no CUDA
# or a usage error.
set -euo pipefail

MODEL=Qwen/Qwen2.5-7B-Instruct
MULTI_MODEL=Qwen/Qwen2.5-0.5B-Instruct   # multi-GPU configs: the plumbing, not the model, is checked
STEPS=20
KILL_AFTER=10
WORK=""
LLM_URL=""
LORA_NAME=ald-ft
VLLM=auto         # auto: when `import vllm` works
MULTI_GPU=auto    # auto: when more than one GPU is visible
DRY_RUN=0
PYTHON=${PYTHON:-python}
VLLM_PORT=${VLLM_PORT:-8011}
SERVE_PORT=${SERVE_PORT:-8012}
QUESTION="ALD 공정에서 퍼지 단계가 필요한 이유는 무엇인가요?"

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  cat <<'EOF'

Options:
  --model ID         base model (default Qwen/Qwen2.5-7B-Instruct; Qwen/Qwen2.5-0.5B-Instruct is quick)
  --steps N          optimizer steps per training run (default 20)
  --kill-after K     kill the resume run after checkpoint-K (default 10, < N)
  --work DIR         where data, adapters, logs and results.json go (default: a new temp dir)
  --llm-url URL      a vLLM (OpenAI API) already serving --model with the adapter as --lora-name
  --lora-name NAME   the adapter's name on the vLLM server (default ald-ft)
  --vllm | --no-vllm start vLLM here or skip the stage (default: when vllm is installed)
  --multi-gpu | --no-multi-gpu   the multi-GPU configs (default: when >1 GPU)
  --dry-run          print the commands, run nothing, no GPU needed
Environment: PYTHON (the interpreter with aldlab installed), VLLM_PORT, SERVE_PORT.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --kill-after) KILL_AFTER=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --llm-url) LLM_URL=${2%/}; VLLM=1; shift 2 ;;
    --lora-name) LORA_NAME=$2; shift 2 ;;
    --vllm) VLLM=1; shift ;;
    --no-vllm) VLLM=0; shift ;;
    --multi-gpu) MULTI_GPU=1; shift ;;
    --no-multi-gpu) MULTI_GPU=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "알 수 없는 옵션 / unknown option: $1 (--help)" >&2; exit 2 ;;
  esac
done
if ! [ "$KILL_AFTER" -lt "$STEPS" ] 2>/dev/null; then
  echo "--kill-after($KILL_AFTER)는 --steps($STEPS)보다 작아야 합니다 / --kill-after must be below --steps" >&2
  exit 2
fi

# ---------------------------------------------------------------- fail early without CUDA
if [ "$DRY_RUN" = 0 ]; then
  if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "CUDA GPU가 없습니다: 이 스모크 테스트는 CUDA GPU에서만 돕니다 (명령만 보려면 --dry-run)." >&2
    echo "No CUDA GPU: this smoke test runs on a CUDA GPU only (torch.cuda.is_available() is False;" >&2
    echo "check nvidia-smi and a CUDA build of torch). --dry-run prints the commands." >&2
    exit 2
  fi
  NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
else
  NGPU=${NGPU:-2}
fi
[ "$NGPU" -ge 1 ] || NGPU=1
WORK=${WORK:-$(mktemp -d -t aldlab-gpu-smoke-XXXX)}
mkdir -p "$WORK"
DATA=$WORK/data
RESULTS=$WORK/results.tsv
PIDS=$WORK/background.pids
: > "$RESULTS"
: > "$PIDS"
# fd 3 is the terminal's stdout: --dry-run prints every command there, whatever a stage
# redirects its own output to.
exec 3>&1
echo "model $MODEL, $STEPS steps (kill after $KILL_AFTER), $NGPU GPU(s), work dir $WORK" >&2

# ---------------------------------------------------------------- helpers

aldlab() { run "$PYTHON" -m aldlab.cli "$@"; }

run() {  # run CMD...: the command, or with --dry-run its shell-quoted line on fd 3
  if [ "$DRY_RUN" = 1 ]; then
    { printf '+'; printf ' %q' "$@"; printf '\n'; } >&3
    return 0
  fi
  "$@"
}

background() {  # background LOG CMD...: start CMD in its own process group, remembered for the exit trap
  local log=$1
  shift
  if [ "$DRY_RUN" = 1 ]; then
    run "$@"
    echo "  (in the background, log $log)" >&3
    return 0
  fi
  setsid "$@" >>"$log" 2>&1 &
  echo $! >>"$PIDS"
}

stop_background() {
  local pid
  while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done <"$PIDS"
}
trap stop_background EXIT

pycheck() {  # pycheck ARGS... < python code: exits non-zero with a one-line reason on stdout
  if [ "$DRY_RUN" = 1 ]; then
    cat >/dev/null
    echo "  (python check of $*)" >&3
    return 0
  fi
  "$PYTHON" - "$@"
}

stage() {  # stage NAME FUNCTION [ARGS...]: time it, record PASS/FAIL and its last stdout line
  local name=$1 start=$SECONDS out rc
  shift
  if [ "$DRY_RUN" = 1 ]; then echo "== $name" >&3; else echo "== $name" >&2; fi
  set +e
  # A subshell with errexit on: the first failing command ends the stage, not the script.
  out=$(set -e; "$@" 2>>"$WORK/$name.log")
  rc=$?
  set -e
  if [ "$DRY_RUN" = 1 ]; then
    printf '%s\tDRY\t0\t%s\n' "$name" "commands printed" >>"$RESULTS"
    return 0
  fi
  local detail=${out##*$'\n'}
  if [ "$rc" -eq 0 ]; then
    printf '%s\tPASS\t%s\t%s\n' "$name" $((SECONDS - start)) "$detail" >>"$RESULTS"
  else
    printf '%s\tFAIL\t%s\t%s (log %s)\n' "$name" $((SECONDS - start)) "${detail:-exit $rc}" "$WORK/$name.log" >>"$RESULTS"
  fi
  echo "   $detail" >&2
}

skip() {  # skip NAME REASON
  printf '%s\tSKIP\t0\t%s\n' "$1" "$2" >>"$RESULTS"
}

SEED_FLAGS=()
seed_flags() {  # seed_flags OUT: the seed's finetune_llama.py flags, cut to --steps for the smoke test
  SEED_FLAGS=(--model_name "$MODEL" --train_file "$DATA/train.jsonl" --eval_file "$DATA/eval.jsonl"
              --output_dir "$1" --num_epochs 3 --batch_size 4 --learning_rate 2e-4 --save_inference_only
              --max_steps "$STEPS" --save_steps "$KILL_AFTER" --eval_steps "$KILL_AFTER" --logging_steps 1
              --max_eval_examples 32 --quiet)
}

train_report() {  # train_report OUT: steps, tokens/s, peak GPU memory, stop rate; fails on a short run
  pycheck "$1" "$STEPS" <<'EOF'
import json, sys
out, steps = sys.argv[1], int(sys.argv[2])
meta = json.load(open(f"{out}/training_meta.json"))
log = [json.loads(line) for line in open(f"{out}/train_log.jsonl")]
final, check = meta["final"], meta.get("generation_check") or {}
peak = max((x.get("cuda_peak_memory_gb", 0) for x in log), default=0)
msg = (f"steps {final['steps']}, eval_loss {final['final_eval_loss']:.4f}, "
       f"{final['supervised_tokens_per_s']:.0f} tok/s, peak {peak:.1f} GB, "
       f"stopped {check.get('stopped')}/{check.get('questions')}")
if final["steps"] != steps:
    print(f"{msg}: expected {steps} steps"); sys.exit(1)
if check and check["stopped"] < check["questions"]:
    print(f"{msg}: answers that never reached the stop token"); sys.exit(1)
print(msg)
EOF
}

kill_after_checkpoint() {  # kill_after_checkpoint OUT LOG CMD...: run CMD, SIGKILL it once checkpoint-K exists
  local out=$1 log=$2 pid
  shift 2
  if [ "$DRY_RUN" = 1 ]; then
    run "$@"
    echo "  (SIGKILL once $out/checkpoint-$KILL_AFTER exists)" >&3
    return 0
  fi
  # Own session and process group, so the kill reaches every rank a launcher started.
  setsid "$@" >>"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -f "$out/checkpoint-$KILL_AFTER/trainer_state.json" ]; do sleep 2; done
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the run ended before checkpoint-$KILL_AFTER: nothing was killed"
    return 1
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

resumed_like() {  # resumed_like LOG OUT [REFERENCE_OUT]: the second process resumed, its losses match
  pycheck "$@" "$KILL_AFTER" "$STEPS" <<'EOF'
import json, sys
log_path, out = sys.argv[1], sys.argv[2]
reference = sys.argv[3] if len(sys.argv) > 5 else None
kill_after, steps = int(sys.argv[-2]), int(sys.argv[-1])
text = open(log_path, encoding="utf-8").read()
resumed_part = text.split("== resume", 1)[-1]
if f"checkpoint-{kill_after}" not in resumed_part or "step 0 eval_loss" in resumed_part:
    print("the second run did not resume from the checkpoint (it started over)"); sys.exit(1)
meta = json.load(open(f"{out}/training_meta.json"))
if meta["final"]["steps"] != steps:
    print(f"resumed run ended at step {meta['final']['steps']}, not {steps}"); sys.exit(1)
losses = {h["step"]: h["loss"] for h in meta["history"] if "loss" in h}
msg = f"killed after checkpoint-{kill_after}, resumed to step {steps}"
if reference:
    ref = {h["step"]: h["loss"] for h in json.load(open(f"{reference}/training_meta.json"))["history"] if "loss" in h}
    worst = max(abs(losses[s] - ref[s]) / max(1e-6, abs(ref[s])) for s in range(kill_after + 1, steps + 1))
    msg += f", step losses after resume within {worst:.1e} of the unbroken run"
    if worst > 2e-2:
        print(msg + " (limit 2e-2)"); sys.exit(1)
print(msg)
EOF
}

# ---------------------------------------------------------------- stages

stage_cuda() {
  pycheck <<'EOF'
import sys, torch
name, cap = torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0)
try:
    import bitsandbytes  # noqa: F401
except ImportError:
    print(f"{name} (sm_{cap[0]}{cap[1]}): bitsandbytes is not installed (pip install -e .[gpu])"); sys.exit(1)
print(f"{name}, sm_{cap[0]}{cap[1]}, {'bf16' if cap[0] >= 8 else 'fp16 (no bf16)'}, torch {torch.__version__}")
EOF
}

stage_data() {
  aldlab data build -o "$DATA" --preset gpu-qwen7b --train-size 240 --eval-size 48 --quiet >&2
  pycheck "$DATA" <<'EOF'
import sys
rows = {n: sum(1 for _ in open(f"{sys.argv[1]}/{n}.jsonl")) for n in ("train", "eval")}
print(f"{rows['train']} train / {rows['eval']} eval rows")
sys.exit(0 if min(rows.values()) > 0 else 1)
EOF
}

stage_qlora() {
  seed_flags "$WORK/qlora"
  aldlab train --preset gpu-qwen7b-qlora "${SEED_FLAGS[@]}" >&2
  train_report "$WORK/qlora"
}

stage_resume() {
  local out=$WORK/qlora-resumed log=$WORK/resume.run.log
  seed_flags "$out"
  echo "== first run" >>"$log"
  kill_after_checkpoint "$out" "$log" "$PYTHON" -m aldlab.cli train --preset gpu-qwen7b-qlora "${SEED_FLAGS[@]}"
  echo "== resume" >>"$log"
  aldlab train --preset gpu-qwen7b-qlora "${SEED_FLAGS[@]}" --resume >>"$log" 2>&1
  resumed_like "$log" "$out" "$WORK/qlora"
}

stage_lora_bf16() {
  seed_flags "$WORK/lora-bf16"
  aldlab train --preset gpu-qwen7b "${SEED_FLAGS[@]}" >&2
  train_report "$WORK/lora-bf16"
}

stage_ask() {  # stage_ask NAME ARGS...: aldlab ask --json answers with text from the transformers engine
  local answer=$WORK/ask-$1.json
  shift
  aldlab ask "$QUESTION" --preset gpu-qwen7b "$@" --json --max-new-tokens 200 >"$answer"
  pycheck "$answer" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
text = " ".join(answer.get("text", "").split())
print(f"[{answer.get('model')}, {answer.get('engine')}] {text[:100]}")
sys.exit(0 if text and answer.get("engine") == "transformers" else 1)
EOF
}

stage_eval() {
  aldlab eval --preset gpu-qwen7b --model "$MODEL" --adapter "ft=$WORK/qlora" --systems ft,ft+rag --limit 8 \
    -o "$WORK/eval" --quiet >&2
  pycheck "$WORK/eval" <<'EOF'
import json, sys
metrics = json.load(open(f"{sys.argv[1]}/metrics.json"))
text = json.dumps(metrics)
print(f"metrics.json written ({len(text)} bytes)")
sys.exit(0 if "ft+rag" in text else 1)
EOF
}

stage_export() {
  local merged answered
  aldlab export "$WORK/qlora" --merge -o "$WORK/merged" >&2
  merged=$(merged_check)
  answered=$(stage_ask merged --model "$WORK/merged" --base)
  echo "$merged; $answered"
}

merged_check() {  # the base's EOS ids kept, half precision the GPU has
  pycheck "$MODEL" "$WORK/merged" <<'EOF'
import json, sys, torch
from transformers import GenerationConfig
base, merged = sys.argv[1], sys.argv[2]
ids = lambda v: v if isinstance(v, list) else [v]
want = ids(GenerationConfig.from_pretrained(base).eos_token_id)
got = ids(json.load(open(f"{merged}/generation_config.json"))["eos_token_id"])
dtype = json.load(open(f"{merged}/config.json")).get("dtype") or json.load(open(f"{merged}/config.json")).get("torch_dtype")
expected = "bfloat16" if torch.cuda.get_device_capability(0)[0] >= 8 else "float16"
msg = f"eos {got} (base {want}), dtype {dtype}"
if not set(want) <= set(got) or dtype != expected:
    print(f"{msg}: expected every base EOS id and {expected}"); sys.exit(1)
print(msg)
EOF
}

stage_reload() {
  pycheck "$MODEL" "$WORK/qlora" "$WORK/merged" "$QUESTION" <<'EOF'
import json, sys, torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
base_id, adapter, merged_dir, question = sys.argv[1:5]
weights = load_file(f"{adapter}/adapter_model.safetensors")
lora_b = [v for k, v in weights.items() if "lora_B" in k]
if not lora_b or not all(torch.isfinite(v).all() for v in weights.values()) or max(float(v.abs().max()) for v in lora_b) == 0:
    print(f"adapter is empty, zero or not finite ({len(weights)} tensors)"); sys.exit(1)
dtype = json.load(open(f"{merged_dir}/config.json")).get("dtype") or "bfloat16"
tok = AutoTokenizer.from_pretrained(adapter)
ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)["input_ids"].to("cuda")
def logits(model):
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -8:].float()
model = AutoModelForCausalLM.from_pretrained(base_id, dtype=getattr(torch, dtype), device_map={"": 0})
base = logits(model)
tuned = logits(PeftModel.from_pretrained(model, adapter))
del model
merged = logits(AutoModelForCausalLM.from_pretrained(merged_dir, dtype=getattr(torch, dtype), device_map={"": 0}))
scale = float(tuned.abs().max())
moved, gap = float((tuned - base).abs().max()) / scale, float((merged - tuned).abs().max()) / scale
msg = f"{len(lora_b)} LoRA B tensors; adapter moves logits {moved:.1e}, merged vs adapter {gap:.1e}"
same_top = bool((merged.argmax(-1) == tuned.argmax(-1)).all())
if moved < 1e-4 or gap > 5e-2 or not same_top:
    print(msg + " (want > 1e-4, < 5e-2 and the same top tokens)"); sys.exit(1)
print(msg)
EOF
}

wait_for() {  # wait_for URL SECONDS PID: until URL answers, the process dies, or the time is up
  local url=$1 limit=$2 pid=$3 start=$SECONDS
  until "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=5)" "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then echo "the server exited before answering $url"; return 1; fi
    if [ $((SECONDS - start)) -gt "$limit" ]; then echo "no answer from $url after ${limit}s"; return 1; fi
    sleep 3
  done
}

openai_check() {  # openai_check BASE_URL MODEL WHO: /v1/models lists MODEL, a chat completion answers
  pycheck "$@" "$QUESTION" <<'EOF'
import json, sys, urllib.request
url, model, who, question = sys.argv[1:5]
listed = [m["id"] for m in json.load(urllib.request.urlopen(f"{url}/models", timeout=30))["data"]]
if model not in listed:
    print(f"{who}: {model} not in /v1/models {listed}"); sys.exit(1)
body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 256, "temperature": 0}
request = urllib.request.Request(f"{url}/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
reply = json.load(urllib.request.urlopen(request, timeout=300))
choice = reply["choices"][0]
text = " ".join((choice["message"].get("content") or "").split())
msg = f"{who}: {model} finish_reason {choice.get('finish_reason')}: {text[:80]}"
if not text or choice.get("finish_reason") != "stop" or reply.get("object") != "chat.completion":
    print(msg); sys.exit(1)
print(msg)
EOF
}

stage_vllm() {
  local url=$LLM_URL
  local direct
  if [ -z "$url" ]; then
    url=http://127.0.0.1:$VLLM_PORT/v1
    background "$WORK/vllm-server.log" vllm serve "$MODEL" --port "$VLLM_PORT" --enable-lora --max-lora-rank 16 \
      --lora-modules "$LORA_NAME=$WORK/qlora" --max-model-len 4096
    [ "$DRY_RUN" = 1 ] || wait_for "$url/models" 900 "$(tail -n 1 "$PIDS")"
  fi
  direct=$(openai_check "$url" "$LORA_NAME" vLLM)
  background "$WORK/aldlab-serve.log" "$PYTHON" -m aldlab.cli serve --preset gpu-qwen7b --port "$SERVE_PORT" \
    --llm-url "$url" --llm-model "$MODEL"
  [ "$DRY_RUN" = 1 ] || wait_for "http://127.0.0.1:$SERVE_PORT/api/health" 300 "$(tail -n 1 "$PIDS")"
  echo "$direct; $(openai_check "http://127.0.0.1:$SERVE_PORT/v1" "$LORA_NAME" "aldlab serve")"
}

stage_multi_gpu() {  # stage_multi_gpu CONFIG: bf16 LoRA under accelerate, killed and resumed
  local config=$1 out=$WORK/multi-$1 log=$WORK/multi-$1.run.log
  local launch=("$PYTHON" -m accelerate.commands.launch --config_file "configs/accelerate/$config.yaml"
                --num_processes "$NGPU" -m aldlab.cli train --preset gpu-qwen7b)
  MODEL=$MULTI_MODEL seed_flags "$out"
  echo "== first run" >>"$log"
  kill_after_checkpoint "$out" "$log" "${launch[@]}" "${SEED_FLAGS[@]}"
  echo "== resume" >>"$log"
  run "${launch[@]}" "${SEED_FLAGS[@]}" --resume >>"$log" 2>&1
  resumed_like "$log" "$out"
}

# ---------------------------------------------------------------- run

stage cuda stage_cuda
stage data stage_data
stage qlora stage_qlora
stage resume stage_resume
stage lora-bf16 stage_lora_bf16
stage ask stage_ask adapter --model "$MODEL" --adapter "ft=$WORK/qlora"
stage eval stage_eval
stage export stage_export
stage reload stage_reload
if [ "$VLLM" = auto ]; then
  if [ "$DRY_RUN" = 0 ] && "$PYTHON" -c "import vllm" 2>/dev/null; then VLLM=1; else VLLM=0; fi
fi
if [ "$VLLM" = 1 ]; then stage vllm stage_vllm; else skip vllm "vllm not installed (pip install vllm) and no --llm-url"; fi
if [ "$MULTI_GPU" = auto ]; then
  if [ "$NGPU" -gt 1 ]; then MULTI_GPU=1; else MULTI_GPU=0; fi
fi
if [ "$MULTI_GPU" = 1 ]; then
  for config in ddp deepspeed-zero2 deepspeed-zero3 fsdp; do
    if [[ $config == deepspeed-* ]] && [ "$DRY_RUN" = 0 ] && ! "$PYTHON" -c "import deepspeed" 2>/dev/null; then
      skip "multi-gpu:$config" "deepspeed not installed (pip install -e .[deepspeed])"
    else
      stage "multi-gpu:$config" stage_multi_gpu "$config"
    fi
  done
else
  skip multi-gpu "one GPU"
fi

# ---------------------------------------------------------------- the table and results.json
"$PYTHON" - "$RESULTS" "$WORK/results.json" "$MODEL" "$STEPS" "$KILL_AFTER" "$NGPU" <<'EOF'
import json, sys, time
tsv, out, model, steps, kill_after, ngpu = sys.argv[1:7]
rows = [dict(zip(("stage", "status", "seconds", "detail"), line.rstrip("\n").split("\t", 3)))
        for line in open(tsv, encoding="utf-8") if line.strip()]
for row in rows:
    row["seconds"] = int(row["seconds"])
print(f"\n{'stage':<26} {'result':<6} {'time':>6}  detail")
for row in rows:
    print(f"{row['stage']:<26} {row['status']:<6} {row['seconds']:>5}s  {row['detail']}")
json.dump({"kind": "aldlab.gpu_smoke", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "model": model, "steps": int(steps), "kill_after": int(kill_after), "gpus": int(ngpu), "stages": rows},
          open(out, "w", encoding="utf-8"), ensure_ascii=False, indent=2)
print(f"\nresults: {out}")
EOF
if grep -q $'\tFAIL\t' "$RESULTS"; then
  echo "FAIL: 실패한 단계가 있습니다 / a stage failed (logs in $WORK)" >&2
  exit 1
fi
if [ "$DRY_RUN" = 1 ]; then echo "dry run: nothing was run ($WORK)" >&2; else echo "PASS ($WORK)" >&2; fi
