"""`aldlab serve` as a real process on the embedded gemma-3-270m, offline (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aldlab.serve.testing import free_port, write_tiny_kb

#: The server refuses weak admin tokens at start (issue 12), so the test uses a real one.
ADMIN_TOKEN = "embedded-test-admin-token-0123456789"


@pytest.mark.slow
def test_aldlab_serve_answers_offline_on_the_embedded_model(tmp_path: Path) -> None:
    kb = write_tiny_kb(tmp_path / "kb")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"rag:\n  dense_model: none\n  refusal_threshold: 0.0\n  index_dir: {tmp_path / 'index'}\n", encoding="utf-8"
    )
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ALDLAB_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aldlab.cli", "serve", "--kb", str(kb), "--port", str(port),
         "--db", str(tmp_path / "serve.sqlite3"), "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.5)
        r = httpx.post(f"{base}/api/ask", json={"question": "TMA 전구체는?", "max_new_tokens": 24}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answer"] and body["contexts"][0]["id"] == "tiny-003" and body["answer_id"]
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", timeout=120,
            json={"model": "base", "stream": True, "max_tokens": 16, "messages": [{"role": "user", "content": "퍼지 단계"}]},
        ) as s:
            lines = [line for line in s.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and "aldlab" in json.loads(lines[-2][6:])
        fb = httpx.post(
            f"{base}/api/feedback",
            json={"answer_id": body["answer_id"], "answer_token": body["answer_token"], "rating": "like"},
        )
        assert fb.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
