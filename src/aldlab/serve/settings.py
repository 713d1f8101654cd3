"""Typed settings of `aldlab serve` (the `serve:` section of a preset or --config file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aldlab.settings import aldlab_home

#: Environment variable holding the admin token; admin routes are off without it.
ADMIN_TOKEN_ENV = "ALDLAB_ADMIN_TOKEN"
#: Environment variable holding the optional API key for the model and feedback routes.
API_KEY_ENV = "ALDLAB_API_KEY"


def default_db_path() -> Path:
    """Where answers, feedback and the KB audit go unless --db says otherwise."""
    return aldlab_home() / "serve" / "aldlab.sqlite3"


@dataclass
class ServeSettings:
    """Limits and wiring of the web service.

    The limits exist so one client cannot exhaust the (single, CPU-bound) model: a long
    prompt or a huge `max_tokens` would hold the generation worker for minutes. A field
    with help metadata is an `aldlab serve` flag (`aldlab.cli_options.dataclass_options`).
    """

    host: str = field(default="127.0.0.1", metadata={"help": "바인딩 주소 / bind address (default 127.0.0.1)"})
    port: int = field(default=8000, metadata={"help": "포트 / port (default 8000)", "min": 1, "max": 65535})
    db: str | Path | None = field(default=None, metadata={  # default: default_db_path()
        "help": "SQLite 경로 (피드백·답변 기록·감사) / feedback DB"})
    kb: str | None = None  # default: the shipped KB; admin edits need a native KB directory
    max_body_bytes: int = 64 * 1024
    max_question_chars: int = 2000
    max_history_turns: int = 20
    max_top_k: int = 10
    max_new_tokens_limit: int = 512
    # Generation jobs waiting or running before new ones get 503 (clients queue, not crash).
    max_pending: int = 256
    # Per client (IP) waiting or running: beyond it a 429, so one client cannot fill the
    # shared queue and make everyone else wait (0 = no per-client cap).
    max_pending_per_client: int = 4
    # Questions per client per minute (token bucket, `rate_limit_burst` at once); 0 = off.
    # Generous for a person (a CPU answer takes tens of seconds), tight for a script.
    rate_limit_per_minute: float = 30.0
    rate_limit_burst: int = 10
    # Host names accepted besides the configured host and loopback ("*" = any: only
    # behind a proxy that checks Host itself). See aldlab.serve.guards.
    allowed_hosts: list[str] = field(default_factory=list, metadata={
        "help": "허용할 Host 이름 (반복 가능; 기본: --host, localhost, 127.0.0.1) / extra accepted Host names",
        "flags": ("--allowed-host",), "repeatable": True})
    # Proxies whose X-Forwarded-For / -Proto name the client (uvicorn's --forwarded-allow-ips;
    # addresses or networks, "*" = any). None by default: the peer address is the client, so a
    # header cannot mint new identities to escape the per-client limits and throttles.
    trusted_proxies: list[str] = field(default_factory=list, metadata={
        "help": "X-Forwarded-For를 믿을 프록시 주소 (반복 가능, 기본 없음) / proxy whose X-Forwarded-For is trusted",
        "flags": ("--trusted-proxy", "--forwarded-allow-ips"), "repeatable": True})
    # One thread for the embedded model (one model load, torch already uses both cores);
    # more are useful only with --llm-url, where generation is a remote HTTP call.
    generation_threads: int = 1
    cors_origins: list[str] = field(default_factory=list, metadata={
        "help": "허용할 CORS 출처 (반복 가능, 기본 꺼짐) / allowed CORS origin", "flags": ("--cors-origin",),
        "repeatable": True})
    # Answers without feedback are deleted after this many days, and beyond this many rows
    # (oldest first); answers with feedback stay for review and export. 0 = no limit.
    retention_days: float = 30.0
    retention_rows: int = 100_000
    # Rated answers, counted from the review decision: a rejected item (and its answer and
    # passage snapshot) is deleted after this many days; an approved one that can never be
    # trained on (dislike without correction, chat history) drops its snapshot. Pending
    # items and approved training targets stay (aldlab.store.feedback.purge_rated_feedback).
    # 0 = keep rated answers for good.
    rated_retention_days: float = 90.0
    # Passage characters a feedback snapshot keeps with their texts; passages past it are
    # kept by id (texts read from the KB when the dataset is built). 0 = no cap.
    snapshot_max_chars: int = 50_000
    confidence_high: float = 0.7
    confidence_medium: float = 0.4
    # Not read from YAML in practice: filled from ALDLAB_ADMIN_TOKEN by the command.
    admin_token: str | None = None
    # Filled from ALDLAB_API_KEY: when set, /v1/*, /api/ask and /api/feedback need
    # `Authorization: Bearer <key>` (like vLLM's --api-key).
    api_key: str | None = None
    # The model that answers requests naming none; None = the first adapter, else base.
    default_model: str | None = None
    # Served name -> registry version ("v0003" -> "v0003"), filled by `aldlab serve` when the
    # default model is the registry's promoted one.
    model_versions: dict[str, str] = field(default_factory=dict)
    # Set by `aldlab serve` when no adapter, --base or --llm-url was given: the server then
    # follows the registry's promoted model (`aldlab improve`, `aldlab models promote`).
    follow_registry: bool = False
    # How often the promoted pointer (ALDLAB_HOME/default_adapter.json) is read: one small
    # file stat + read, so a few seconds costs nothing and a promotion shows up quickly.
    registry_poll_s: float = 5.0
    # Set by `aldlab serve` when the only model is the embedded base (not instruction-tuned):
    # the web UI then says so and points to `aldlab pipeline` / contexts-only.
    base_model_warning: bool = False
    # The admin tab offers "지금 개선 / Improve now" once this many approved feedback items wait
    # that the promoted model was not trained on; the run is `aldlab improve --min-new-feedback`
    # with the same number, so the button and the command agree on "enough".
    improve_min_items: int = field(default=3, metadata={
        "help": "관리자 탭 '지금 개선'에 필요한 새 승인 피드백 수 / new approved feedback items before the admin tab "
                "offers Improve now", "min": 1})
    # The preset the tab's `aldlab improve` trains with: `aldlab serve --preset`'s, unless set here.
    improve_preset: str | None = None

    def db_path(self) -> Path:
        return Path(self.db).expanduser() if self.db else default_db_path()
