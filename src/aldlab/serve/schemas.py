"""The API's request and response models: what crosses the HTTP edge, and nothing else.

Requests cap what a client may send (lengths, counts, patterns); responses fix the JSON
shapes the web UI, the `openai` client and `aldlab feedback` read. KB documents and store
rows stay plain dicts here: their fields belong to `aldlab.kb.schema` and `aldlab.store`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path as FastApiPath
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from aldlab.files import lone_surrogate_at
from aldlab.kb.schema import NAME_PATTERN
from aldlab.rag.types import Passage

# --------------------------------------------------------------------------- requests


class RequestBody(BaseModel):
    """A JSON request body, valid Unicode throughout.

    JSON may spell a lone surrogate ("\\ud800") and Python decodes it; unconstrained text
    then failed as a 500 when written to SQLite or a KB file or echoed in an error (a
    question after generation ran, `model`, an admin keyword). Checked here, before any
    field, it is a 400 `invalid_text` naming the field (`aldlab.serve.errors`).
    """

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = lone_surrogate_at(data)
        if where is not None:
            raise PydanticCustomError("invalid_text", "{field} contains a lone surrogate", {"field": where})
        return data


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(RequestBody):
    model_config = ConfigDict(extra="ignore")

    question: str
    model: str | None = None  # None: the server's default (the fine-tuned adapter when loaded)
    top_k: int | None = None
    use_retrieval: bool = True
    context_only: bool = False
    history: list[Turn] = Field(default_factory=list)
    filter_keyword: str | None = None
    max_new_tokens: int | None = None
    stream: bool = False


class FeedbackRequest(RequestBody):
    model_config = ConfigDict(extra="ignore")

    answer_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    # Returned with the answer to the client that asked, and to no one else.
    answer_token: str = Field(min_length=16, max_length=128)
    rating: Literal["like", "dislike"]
    comment: str | None = Field(default=None, max_length=2000)
    correction: str | None = Field(default=None, max_length=8000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """Plain text of a message (OpenAI content may be a list of typed parts)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") in ("text", "input_text"))


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


#: OpenAI request fields read only to say they were not applied (`ChatAnswerOut.ignored_parameters`):
#: the server decodes with its configured `rag.temperature` (greedy by default, as evaluated), and
#: the generators take their sampling settings once, when they are built.
UNAPPLIED_PARAMETERS = (
    "temperature", "top_p", "seed", "stop", "frequency_penalty", "presence_penalty", "response_format", "tools"
)


class ChatCompletionRequest(RequestBody):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    stream_options: StreamOptions | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    # Accepted and reported back as not applied (UNAPPLIED_PARAMETERS), never silently dropped.
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    # Extra options (the openai client sends them with `extra_body={"aldlab": {...}}`):
    # top_k, use_retrieval, filter_keyword, sources_in_text.
    aldlab: dict[str, Any] | None = None

    def unapplied_parameters(self) -> list[str]:
        """The UNAPPLIED_PARAMETERS this request set to a value."""
        return [name for name in UNAPPLIED_PARAMETERS if getattr(self, name) is not None]


#: Longest document text (characters, counted after JSON decoding) and uploaded file.
MAX_DOCUMENT_CHARS = 20_000
MAX_UPLOAD_CHARS = 64 * 1024
#: Body cap of the admin document routes: a client may send every character as a 6-byte
#: `\uXXXX` escape (json.dumps' default ensure_ascii does), so a 20,000-character Korean
#: document is ~120 KB on the wire; the decoded length is what the schema limits.
DOCUMENT_BODY_BYTES = 6 * MAX_UPLOAD_CHARS + 16 * 1024

# Document ids and topics (aldlab.kb.schema.NAME_PATTERN, the KB validator's rule too) become
# file names and URL segments, so nothing that could climb out of the KB dir ("../x", "a/b") passes.
DocId = Annotated[str, FastApiPath(pattern=NAME_PATTERN)]


class ReviewRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    # The item's `revisions` as the reviewer read it: the decision applies to that text only.
    revision: int = Field(ge=1)
    note: str | None = Field(default=None, max_length=2000)
    # Approve although a document the answer cited changed since (409 `kb_changed` otherwise).
    accept_kb_change: bool = False


class DocumentIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=NAME_PATTERN)
    title: str = Field(default="", max_length=300)
    text: str = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    questions: list[str] = Field(default_factory=list, max_length=50)
    topic: str = Field(default="general", pattern=NAME_PATTERN)
    source: str = Field(default="admin", max_length=200)


class DocumentChanges(RequestBody):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=300)
    text: str | None = Field(default=None, min_length=1, max_length=MAX_DOCUMENT_CHARS)
    keywords: list[str] | None = Field(default=None, max_length=50)
    questions: list[str] | None = Field(default=None, max_length=50)
    topic: str | None = Field(default=None, pattern=NAME_PATTERN)
    source: str | None = Field(default=None, max_length=200)


#: What the admin tab may upload: the formats of `aldlab.kb.loaders.load_any` that are text.
UPLOAD_NAME_PATTERN = r"^[^/\\\x00]{1,120}\.([Mm][Dd]|[Mm]arkdown|[Tt][Xx][Tt]|[Jj][Ss][Oo][Nn])$"


class DocumentUpload(RequestBody):
    """A file from the admin tab, parsed on the server by the CLI importer (`aldlab kb import`).

    The file travels as JSON text, not multipart: every body must be JSON (`guards`), and
    the body cap (`max_body_bytes`) already bounds its size.
    """

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(pattern=UPLOAD_NAME_PATTERN)
    content: str = Field(min_length=1, max_length=MAX_UPLOAD_CHARS)
    allow_near_duplicates: bool = False


# --------------------------------------------------------------------------- answers


ConfidenceLabel = Literal["high", "medium", "low"]


class ContextOut(BaseModel):
    """A passage the model was given (shown as "참고 문서 / contexts")."""

    id: str
    title: str
    text: str
    score: float
    topic: str

    @classmethod
    def of(cls, passage: Passage) -> ContextOut:
        return cls(id=passage.id, title=passage.title, text=passage.text, score=round(float(passage.score), 4), topic=passage.topic)


class CitationOut(BaseModel):
    """A document the answer cites or is supported by (`how`: bracket, mention, overlap, passage when
    the answer is that passage shown verbatim, or later_part when it was added verbatim for the later
    part of a two-part question)."""

    id: str
    title: str
    how: str
    support: float


class Bilingual(BaseModel):
    ko: str
    en: str


class AnswerOut(BaseModel):
    """What /api/ask returns, the SSE `answer` event carries and the OpenAI routes put under `aldlab`."""

    answer_id: str
    # Proof of having asked: /api/feedback needs it, so only this client can rate.
    answer_token: str
    answer: str
    model: str
    # Everything the model was given, cited or not.
    contexts: list[ContextOut]
    # Only what the answer cites or is supported by; empty means "인용 없음 / no citation".
    citations: list[CitationOut]
    confidence: float
    confidence_label: ConfidenceLabel
    confidence_explanation: Bilingual
    refused: bool
    used_retrieval: bool
    latency_s: float
    # Why the best passage is shown instead of the model's text: "" (it is not), "model_refused"
    # "other_passage", "partial_copy" or "unsupported" (aldlab.rag.config.RagConfig.passage_fallback).
    fallback: Literal["", "model_refused", "other_passage", "partial_copy", "unsupported"] = ""
    # What the reader is told when `fallback` is set (aldlab.rag.types.FALLBACK_NOTES).
    fallback_note: Bilingual | None = None
    # Id of the passage added for the later part of a two-part question ("" = none; aldlab.rag.parts)
    # and what the reader is told about it (aldlab.rag.types.LATER_PART_NOTE).
    later_part: str = ""
    later_part_note: Bilingual | None = None


class FeedbackAck(BaseModel):
    ok: bool = True
    feedback_id: int
    answer_id: str
    status: Literal["pending"] = "pending"


# --------------------------------------------------------------------------- health and reload


class ReloadStatus(BaseModel):
    """The background index rebuild: running now, and how the last one ended."""

    running: bool
    ok: bool | None = None
    seconds: float | None = None
    error: str | None = None
    finished_at: float | None = None


class ReloadInfo(BaseModel):
    """`reload` of an admin edit: whether it scheduled a rebuild, and the rebuild's state."""

    scheduled: bool
    running: bool
    ok: bool | None = None
    seconds: float | None = None
    error: str | None = None
    finished_at: float | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    models: list[str]
    default_model: str
    # Registry version of the default model ('' when it is not a registry model), and why
    # the last promoted model could not be attached (None when it could, or none came).
    model_version: str = ""
    model_swap_error: str | None = None
    # The web UI warns when only the embedded base model (not instruction-tuned) answers.
    base_model_warning: bool
    pending: int
    reload: ReloadStatus
    admin: bool
    api_key_required: bool
    uptime_s: float


# --------------------------------------------------------------------------- OpenAI-compatible


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "aldlab"
    # What Open WebUI shows in its model menu (it falls back to `id`): says which is fine-tuned.
    name: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class RequestReading(BaseModel):
    """How an OpenAI request was read, for the fields aldlab does not apply."""

    # "not_used": the request had a system message and it was not given to the model (the
    # system prompt is fixed in aldlab.prompts, as trained and evaluated); "none": it had none.
    system_message: Literal["none", "not_used"] = "none"
    # Request fields set but not applied (schemas.UNAPPLIED_PARAMETERS), e.g. temperature.
    ignored_parameters: list[str] = Field(default_factory=list)


class ChatAnswerOut(AnswerOut, RequestReading):
    """`aldlab` of a chat completion answered by the assistant: AnswerOut plus the request's reading."""

    kind: Literal["answer"] = "answer"
    # Whether `content` ends with the "출처 / Sources" list (option `sources_in_text`, default on).
    sources_in_text: bool = True


ClientTaskKind = Literal["title", "tags", "follow_ups", "queries", "autocomplete"]


class TaskReplyOut(RequestReading):
    """`aldlab` of a chat completion that was an Open WebUI task prompt (title, tags, ...),
    answered by rules without retrieval, a model call or an answer-log row (`serve.webui_tasks`)."""

    kind: Literal["client_task"] = "client_task"
    task: ClientTaskKind
    note: Bilingual


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    aldlab: Annotated[ChatAnswerOut | TaskReplyOut, Field(discriminator="kind")]


# --------------------------------------------------------------------------- admin


class DocumentPage(BaseModel):
    total: int
    documents: list[dict[str, Any]]


class DocumentAdded(BaseModel):
    document: dict[str, Any]
    reload: ReloadInfo


class DocumentUpdated(BaseModel):
    before: dict[str, Any]
    document: dict[str, Any]
    reload: ReloadInfo


class DocumentDeleted(BaseModel):
    deleted: dict[str, Any]
    reload: ReloadInfo


class DocumentsImported(BaseModel):
    """What an upload did, in the words of `aldlab.kb.edit.ImportReport`."""

    added: list[dict[str, Any]]
    unchanged: list[str]
    id_conflicts: list[str]
    duplicates: list[str]
    near_duplicates: list[str]
    conflicts: list[str]
    reload: ReloadInfo


class ReloadOut(BaseModel):
    reload: ReloadInfo


class AuditPage(BaseModel):
    edits: list[dict[str, Any]]


class FeedbackPage(BaseModel):
    total: int
    items: list[dict[str, Any]]


class ReviewOut(BaseModel):
    item: dict[str, Any]
    warnings: list[str] = []


class ImproveRunOut(BaseModel):
    """The last `aldlab improve` started from the admin tab (`aldlab.serve.improve_runs`)."""

    state: Literal["idle", "running", "promoted", "kept", "failed"]
    started_at: float | None = None
    finished_at: float | None = None
    started_by: str | None = None
    model_id: str | None = None  # the candidate's registry id (promoted or kept aside)
    reasons: list[str] = []  # why the current model was kept, or why the run failed
    log: str | None = None  # the run's log on the server


class ImproveOut(BaseModel):
    """What the "지금 개선 / Improve now" button needs: can it start, and the last run."""

    waiting: int = Field(description="approved feedback items the promoted model was not trained on")
    threshold: int
    ready: bool = Field(description="enough items wait and no run is going: the button is offered")
    promoted: str = Field(description="the promoted model's registry id ('' when none)")
    run: ImproveRunOut
