"""The model names a request may ask for: the adapters and 'base', cached, and the default."""

from __future__ import annotations

import time

import anyio

from aldlab.errors import UserError
from aldlab.rag.types import AssistantProtocol
from aldlab.serve.errors import ApiError


#: The name clients used for "the fine-tuned model" before models were named by their
#: registry version (`aldlab.rag.build.DEFAULT_ADAPTER_NAME`): still accepted, it means the
#: promoted model.
PROMOTED_ALIAS = "ft"


class Models:
    """The assistant's model list, asked at most once per `TTL_S`, and which one is the default.

    The promoted model of the registry is served under its version id ("v0003"), so the
    model list, the answer and the answer log all name the version. `promote` (the hot
    swap, `aldlab.serve.swapper`) makes a newly attached adapter the default and hides the
    one it replaces from the list; that one stays attached, so answers already running on
    it finish on it.
    """

    #: How long the list is reused. A remote LLM server (--llm-url) is asked over HTTP, so
    #: the list is not fetched on every request.
    TTL_S = 60.0

    def __init__(self, assistant: AssistantProtocol, default: str | None, versions: dict[str, str] | None = None) -> None:
        self._assistant = assistant
        self._default = default
        self._cached: tuple[float, list[str]] | None = None
        #: served name -> registry version of the model (only registry models have one)
        self._versions = dict(versions or {})
        self._retired: set[str] = set()

    def version_of(self, name: str) -> str:
        """The registry version of served model `name` ('' for base and hand-given adapters)."""
        return self._versions.get(name, "")

    def promote(self, name: str, version: str) -> None:
        """Answer with `name` (already attached) by default from now on; hide the model it replaces."""
        previous = self._default
        if previous and previous != name and previous in self._versions:
            self._retired.add(previous)
        self._retired.discard(name)
        self._versions[name] = version
        self._default = name
        self.forget()

    async def names(self) -> list[str]:
        """The default model first, then the other adapters, 'base' last; cached, fetched
        off the event loop.

        Why this order: OpenAI clients such as Open WebUI preselect the first model, and the
        base model (not instruction-tuned) echoes the system prompt and loops (issue 25).
        """
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.TTL_S:
            return cached[1]
        try:
            names = await anyio.to_thread.run_sync(self._fetch)
        except UserError as exc:
            if cached is not None:
                return cached[1]  # a stale list beats failing every request
            raise ApiError(502, "llm_unavailable", exc.ko, exc.en, hint=exc.hint) from exc
        self._cached = (time.monotonic(), names)
        return names

    def _fetch(self) -> list[str]:
        names = [
            *dict.fromkeys(n for n in self._assistant.models() if n != "base" and n not in self._retired),
            "base",
        ]
        if self._default in names:  # the configured default (even 'base') is the one preselected
            names.remove(self._default)
            names.insert(0, self._default)
        return names

    def forget(self) -> None:
        """Ask the assistant again next time (after a reload the adapters may differ)."""
        self._cached = None

    async def default(self) -> str:
        """The model that answers when a request names none: the configured one, else the
        first fine-tuned adapter, else base (the trained assistant is the default)."""
        names = await self.names()
        if self._default and self._default in names:
            return self._default
        return next((n for n in names if n != "base"), "base")

    async def check(self, model: str | None) -> str:
        """The model to answer with: `model`, or the default when none is named; 404 if unknown."""
        if not model:
            return await self.default()
        names = await self.names()
        if model == PROMOTED_ALIAS and model not in names and self._default in self._versions:
            return await self.default()
        if model not in names:
            raise ApiError(
                404,
                "model_not_found",
                f"알 수 없는 모델입니다: {model}",
                f"Unknown model: {model}",
                hint=f"사용 가능 / available: {', '.join(names)}",
            )
        return model
