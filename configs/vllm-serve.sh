#!/usr/bin/env sh
# Scaling path: vLLM serves the base model and the LoRA adapters on a GPU box;
# `aldlab serve` keeps retrieval, the web UI, feedback and audit, and sends generation there.
#
# 1) On the GPU machine (vLLM >= 0.6; adapters are `aldlab train` output directories):
#
#      vllm serve Qwen/Qwen2.5-7B-Instruct \
#        --host 0.0.0.0 --port 8001 \
#        --enable-lora --max-lora-rank 16 --max-loras 4 \
#        --lora-modules ald-ft=runs/qwen7b-lora/adapter ald-ft-v2=runs/qwen7b-lora-v2/adapter
#
#    vLLM then lists `Qwen/Qwen2.5-7B-Instruct`, `ald-ft` and `ald-ft-v2` on /v1/models and
#    routes each chat request by its `model` field. --max-lora-rank must be >= the adapters'
#    lora_r (16 in configs/gpu-qwen7b.yaml).
#
# 2) On the service machine (same KB as the one the adapters were trained on):
#
#      ALDLAB_ADMIN_TOKEN=change-me aldlab serve --preset gpu-qwen7b \
#        --llm-url http://gpu-box:8001/v1 --llm-model Qwen/Qwen2.5-7B-Instruct
#
#    The web UI's model switch and `/v1/models` show `base` plus the LoRA module names;
#    `model: "ald-ft"` in /v1/chat/completions or /api/ask selects that adapter. With
#    --llm-url, `aldlab serve` runs 8 generation calls at once (serve.generation_threads)
#    and vLLM batches them. tests/test_serve_cli.py checks this wiring against a fake
#    OpenAI-compatible server.
set -eu
MODEL="${MODEL:-Qwen/Qwen2.5-7B-Instruct}"
ADAPTER="${ADAPTER:-runs/qwen7b-lora/adapter}"
PORT="${PORT:-8001}"
exec vllm serve "$MODEL" --host 0.0.0.0 --port "$PORT" \
    --enable-lora --max-lora-rank 16 --max-loras 4 \
    --lora-modules "ald-ft=$ADAPTER"
