"""Generation engines on the CPU: tokens/s, time to first token and peak RSS, same prompts, one run.

    nice -n 19 python bench/generate.py [--prompts 4] [--max-new-tokens 128] [--adapter DIR]
                                        [--contexts 5] [--gguf NAME=PATH ...]

Prompts are what `aldlab ask` sends: the first answerable questions of evalsets/seed.jsonl
with their retrieved passages from the shipped KB, rendered by aldlab.prompts (RAG prompts
of ~500-900 tokens). Each engine runs in its own subprocess, so its peak RSS is its own:

- `transformers fp32` (HFGenerator, one prompt at a time) — the baseline;
- `llama.cpp <file>` (LlamaCppGenerator) for the base model's Q4_K_M GGUF, or, with
  --adapter, the adapter's merged GGUF in q8_0 and f16 (exported once, cached) — only when
  llama-cpp-python is importable.

Greedy decoding everywhere. Printed per engine: load seconds, TTFT of the first (cold)
prompt and the mean over the rest (their system prompt is already in llama.cpp's KV cache),
decode tokens/s (wall, and per CPU-second: the number that survives a busy machine), peak RSS, the tokens/s ratio to the baseline, and how many answers equal
the baseline's word for word.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Same prompts as the batching bench (this folder is on sys.path when a bench runs as a script).
from eval_generate import rag_prompts  # noqa: E402


# --------------------------------------------------------------------------- worker
def make_engine(spec: dict[str, str]):  # noqa: ANN201
    from aldlab.llm.hf_generate import HFGenerator
    from aldlab.llm.llamacpp import LlamaCppGenerator

    adapters = {"ft": spec["adapter"]} if spec.get("adapter") else None
    if spec["engine"] == "transformers":
        return HFGenerator(None, adapters).load()
    name = "ft" if spec.get("adapter") else "base"
    return LlamaCppGenerator(None, None, gguf_paths={name: spec["gguf"]}).load(name)


def run_worker(spec: dict[str, str], prompts_file: Path, max_new_tokens: int) -> dict[str, object]:
    """One engine over all prompts: timings per prompt, answers, peak RSS."""
    prompts = json.loads(prompts_file.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    gen = make_engine(spec)
    adapter = "ft" if spec.get("adapter") else None
    load_s = time.perf_counter() - t0
    list(gen.stream([{"role": "user", "content": "안녕하세요"}], max_new_tokens=2, adapter=adapter))  # warm-up
    tokenizer = gen.tokenizer
    rows = []
    for messages in prompts:
        start = time.perf_counter()
        first = cpu_first = None
        pieces = []
        for piece in gen.stream(messages, max_new_tokens=max_new_tokens, adapter=adapter):
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            pieces.append(piece)
        end, cpu_end = time.perf_counter(), time.process_time()
        answer = "".join(pieces).strip()
        n_tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        rows.append({
            "ttft": (first or end) - start,
            "decode_s": end - (first or end),
            "decode_cpu_s": cpu_end - (cpu_first if cpu_first is not None else cpu_end),
            "tokens": n_tokens,
            "answer": answer,
        })
    return {"load_s": load_s, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's own peak RSS.

    `ru_maxrss` survives fork + exec, so a worker started by a parent that had just held a
    4 GB model would report the parent's peak; the kernel's VmHWM belongs to the address
    space, which exec replaces.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- driver
def engines(args: argparse.Namespace) -> list[tuple[str, dict[str, str]]]:
    from aldlab.llm.llamacpp import adapter_gguf, llama_cpp_available

    specs = [("transformers fp32", {"engine": "transformers", "adapter": args.adapter or ""})]
    if not llama_cpp_available():
        print("llama-cpp-python 없음: transformers만 측정 / not installed: transformers only", file=sys.stderr)
        return specs
    ggufs = dict(g.split("=", 1) for g in args.gguf)
    if not ggufs and args.adapter:
        ggufs = {"q8_0 (merged)": str(adapter_gguf(args.adapter, "q8_0")), "f16 (merged)": str(adapter_gguf(args.adapter, "f16"))}
    elif not ggufs:
        from aldlab.llm.gguf_export import embedded_gguf_path

        ggufs = {"Q4_K_M (shipped)": str(embedded_gguf_path())}
    specs += [(f"llama.cpp {label}", {"engine": "llama.cpp", "gguf": path, "adapter": args.adapter or ""}) for label, path in ggufs.items()]
    return specs


def run_in_subprocess(spec: dict[str, str], prompts_file: Path, max_new_tokens: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec), "--prompts-file", str(prompts_file),
           "--max-new-tokens", str(max_new_tokens)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(label: str, result: dict[str, object], base: dict[str, object] | None, base_rate: float | None) -> str:
    rows = result["rows"]
    tokens = sum(r["tokens"] for r in rows)
    decode = sum(r["decode_s"] for r in rows)
    rate = max(tokens - len(rows), 1) / max(decode, 1e-9)  # tokens after the first, per decode second
    cpu_rate = max(tokens - len(rows), 1) / max(sum(r.get("decode_cpu_s", 0.0) for r in rows), 1e-9)
    warm = [r["ttft"] for r in rows[1:]] or [rows[0]["ttft"]]
    same = "-" if base is None else f"{sum(a['answer'] == b['answer'] for a, b in zip(rows, base['rows']))}/{len(rows)}"
    ratio = 1.0 if base_rate is None else rate / base_rate
    return (f"{label:<28}{result['load_s']:>7.1f}{rows[0]['ttft']:>10.2f}{sum(warm) / len(warm):>10.2f}"
            f"{tokens:>8}{rate:>9.1f}{cpu_rate:>10.1f}{ratio:>7.1f}x{result['peak_rss_mb']:>9.0f}  {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--adapter", default=None, help="LoRA adapter dir; default: the base model")
    parser.add_argument("--contexts", type=int, default=None,
                        help="passages per prompt (default rag.top_k = 3: ~450-600 tokens; 5: ~650-840 tokens)")
    parser.add_argument("--gguf", action="append", default=[], help="LABEL=PATH: a GGUF for llama.cpp (repeatable)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prompts-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker), Path(args.prompts_file), args.max_new_tokens), ensure_ascii=False))
        return

    from aldlab.llm.model import load_tokenizer

    prompts = rag_prompts(args.prompts, args.contexts)
    tokenizer = load_tokenizer(None)
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(prompts, fh, ensure_ascii=False)
    prompts_file = Path(fh.name)
    print(f"{len(prompts)} RAG prompts, prompt tokens {min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.0f}), "
          f"max_new_tokens {args.max_new_tokens}, model {'base+' + args.adapter if args.adapter else 'base'}")
    print(f"\n{'engine':<28}{'load s':>7}{'TTFT 1st':>10}{'TTFT rest':>10}{'tokens':>8}{'tok/s':>9}{'tok/CPU-s':>10}{'ratio':>8}{'RSS MB':>9}  same answers")
    base = base_rate = None
    try:
        for label, spec in engines(args):
            result = run_in_subprocess(spec, prompts_file, args.max_new_tokens)
            print(summarise(label, result, base, base_rate), flush=True)
            if base is None:
                base = result
                rows = result["rows"]
                base_rate = max(sum(r["tokens"] for r in rows) - len(rows), 1) / max(sum(r["decode_s"] for r in rows), 1e-9)
    finally:
        prompts_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
