"""`OpenAIGenerator`: any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server) via httpx."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from aldlab.errors import UserError
from aldlab.llm.generator import BASE, Reply, StopReason


def stop_reason_of(finish_reason: object) -> StopReason:
    """The server's `finish_reason` in our two words: only "length" means the reply was cut
    (a server may also say "eos", "content_filter" or nothing; none of those is a cut)."""
    return "length" if finish_reason == "length" else "stop"


class OpenAIGenerator:
    """Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server) via httpx.

    `adapter` selects the served model name (vLLM serves LoRA modules as model names);
    None/'base' uses `model`.
    """

    engine = "openai"

    def __init__(
        self, url: str, model: str | None = None, api_key: str | None = None, *, temperature: float = 0.0,
        timeout: float = 120.0,
        transport: Any = None,
    ) -> None:
        import httpx

        base = url.rstrip("/")
        if base.endswith("/chat/completions"):
            base = base[: -len("/chat/completions")]
        self.base_url = base if base.endswith("/v1") else f"{base}/v1"
        self.model = model
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    def _model_for(self, adapter: str | None) -> str:
        if adapter not in (None, "", BASE):
            return str(adapter)
        if self.model:
            return self.model
        served = self.models()
        if len(served) < 2:
            raise UserError(
                "서버의 모델 이름을 알 수 없습니다.", "The server reports no model name.",
                hint="--llm-model 이름을 주세요 / pass --llm-model NAME",
            )
        self.model = served[1]
        return self.model

    def _payload(self, messages: list[dict[str, str]], max_new_tokens: int, adapter: str | None, stream: bool) -> dict[str, Any]:
        return {
            "model": self._model_for(adapter),
            "messages": messages,
            "max_tokens": int(max_new_tokens),
            "temperature": float(self.temperature),
            "stream": stream,
        }

    def _error(self, exc: Exception) -> UserError:
        return UserError(
            f"LLM 서버에 연결할 수 없거나 오류가 났습니다: {self.base_url}",
            f"LLM server unreachable or failed: {self.base_url} ({type(exc).__name__}: {exc})",
            hint="--llm-url과 서버 상태를 확인하세요 (예: http://localhost:8000/v1) / check --llm-url and the server",
        )

    def generate(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> str:
        return self.reply(messages, max_new_tokens=max_new_tokens, adapter=adapter).text

    def reply(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> Reply:
        """The server's reply and its `finish_reason` ("length" = cut at max_tokens)."""
        import httpx

        try:
            response = self._client.post(
                f"{self.base_url}/chat/completions", json=self._payload(messages, max_new_tokens, adapter, False)
            )
            response.raise_for_status()
            choice = response.json()["choices"][0]
            return Reply(str(choice["message"]["content"] or "").strip(), stop_reason_of(choice.get("finish_reason")))
        except (httpx.HTTPError, KeyError, IndexError, ValueError, AttributeError) as exc:
            raise self._error(exc) from exc

    def generate_batch(
        self, batch: list[list[dict[str, str]]], *, max_new_tokens: int, adapter: str | None = None
    ) -> list[str]:
        """One request per prompt: a serving engine (vLLM) batches concurrent requests itself."""
        return [self.generate(messages, max_new_tokens=max_new_tokens, adapter=adapter) for messages in batch]

    def stream(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> Generator[str, None, StopReason]:
        """The server's pieces as they arrive; returns its last chunk's `finish_reason`."""
        import httpx

        payload = self._payload(messages, max_new_tokens, adapter, True)
        finish: object = None
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    choices = json.loads(data)["choices"]
                    if not choices:  # the `include_usage` chunk
                        continue
                    finish = choices[0].get("finish_reason") or finish
                    delta = choices[0].get("delta", {}).get("content")
                    if delta:
                        yield delta
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise self._error(exc) from exc
        return stop_reason_of(finish)

    def models(self) -> list[str]:
        """'base' plus the model names the server lists."""
        import httpx

        try:
            response = self._client.get(f"{self.base_url}/models")
            response.raise_for_status()
            names = [str(m["id"]) for m in response.json().get("data", [])]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise self._error(exc) from exc
        return [BASE, *names]
