"""Hybrid Korean retrieval: Kiwi-tokenised BM25 + dense e5, fused by weighted RRF, MMR-diversified.

Query path (all in-memory, ~15 ms at 10k documents here, dominated by the e5 query
embedding; see bench/retrieval.py):

1. BM25 (bm25s) over Kiwi morphemes; synonym-group members of terms found in the query
   are added as a second, down-weighted query (`synonym_weight`).
2. Dense cosine = embeddings @ query vector (one numpy mat-vec). The ranking uses each
   document's vector moved towards its example questions (`Document.questions`); the
   refusal signals use the passage vectors alone.
3. Every document scored by the likelihood of the question's words under the KB's
   question-to-document translation model (`translation.py`), a third candidate list.
4. Weighted reciprocal rank fusion of the candidate lists.
5. The top fused candidates reordered by a linear model over their scores (`rank.py`), or
   an optional cross-encoder rerank of the fused candidates instead.
6. Exact-duplicate removal and MMR (relevance minus redundancy) down to top_k.

Out-of-KB detection uses absolute signals (best cosine, best BM25, term coverage) through
the calibrated model in `confidence.py`, never the fused rank scores.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aldlab.errors import UserError
from aldlab.files import atomic_write_bytes, atomic_write_json, read_json
from aldlab.kb.schema import Document, KnowledgeBase
from aldlab.rag.acronyms import with_letter_spellings
from aldlab.rag.config import RagConfig
from aldlab.rag.confidence import DEFAULT_CALIBRATION, Calibration, QueryFeatures
from aldlab.rag.dense import Embedder, get_embedder
from aldlab.rag.index import CorpusIndex, load_or_build_index
from aldlab.rag.question_ngrams import QuestionNgramIndex
from aldlab.rag.rank import RERANK_DEPTH, LinearRanker, RankInputs, candidate_features, load_default_ranker, reorder
from aldlab.rag.scope import site_specific
from aldlab.rag.tokenize import KoreanTokenizer, get_tokenizer, name_terms
from aldlab.rag.translation import DocumentScorer, TranslationModel, cue_terms
from aldlab.rag.types import Passage

#: (query, passage texts) -> one relevance score per passage; higher is better.
Reranker = Callable[[str, list[str]], Sequence[float]]


@dataclass
class Retrieval:
    """The result of one search: passages plus the signals used for refusal."""

    query: str
    passages: list[Passage]
    features: QueryFeatures
    confidence: float
    expanded_terms: list[str] = field(default_factory=list)
    #: Names in the query (vendors, tools, materials, alarm codes: `tokenize.name_terms`)
    #: that no KB document contains. The KB cannot answer about a thing it never names.
    unknown_names: list[str] = field(default_factory=list)
    #: Phrases tying the question to one site, tool, bill or person ("우리 팹", "2호기", "견적";
    #: `scope.site_specific`): the KB is general knowledge and cannot answer those.
    site_specific: list[str] = field(default_factory=list)


def rrf_fuse(
    rankings: Sequence[Sequence[int]], weights: Sequence[float], k: int = 60
) -> dict[int, float]:
    """Weighted reciprocal rank fusion: sum_i w_i / (k + rank_i), ranks starting at 1."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight <= 0:
            continue
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return fused


def mmr_select(
    candidates: Sequence[int],
    relevance: Sequence[float],
    similarity: np.ndarray,
    top_k: int,
    lam: float,
) -> list[int]:
    """Maximal marginal relevance: argmax lam*rel - (1-lam)*max_sim_to_selected.

    `similarity` is the candidates' pairwise similarity matrix (same order as
    `candidates`); relevance is scaled to [0, 1] so both terms are comparable.
    The redundancy term is *subtracted*: a candidate similar to one already chosen loses.
    """
    if not candidates:
        return []
    rel = np.asarray(relevance, dtype=float)
    # Min-max within the candidate list (for ordering only, never for refusal): RRF
    # scores of the top candidates differ by ~3%, so dividing by the max would let
    # any similarity difference override relevance.
    spread = rel.max() - rel.min()
    rel = (rel - rel.min()) / spread if spread > 0 else np.ones_like(rel)
    selected: list[int] = []
    remaining = list(range(len(candidates)))
    while remaining and len(selected) < top_k:
        if selected:
            redundancy = similarity[np.ix_(remaining, selected)].max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        scores = lam * rel[remaining] - (1.0 - lam) * redundancy
        best = remaining[int(np.argmax(scores))]
        selected.append(best)
        remaining.remove(best)
    return [candidates[i] for i in selected]


_BLAS_CONTROLLER: object | None = None


def single_thread_blas() -> contextlib.AbstractContextManager[object]:
    """Limit numpy's BLAS to one thread for a query.

    Measured here: a 10k x 384 mat-vec takes 0.9 ms on one thread but 16 ms p50 on two
    when another process holds a core (OpenBLAS threads spin and wait for each other).
    Query-sized products gain nothing from threads anyway.
    """
    global _BLAS_CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: only a speed-up
        return contextlib.nullcontext()
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")  # type: ignore[attr-defined]


#: A number as the tokenizer keeps it, with an optional unit glued on ("500sccm", "1.5", "10^-3").
_VALUE = re.compile(r"^[+-]?\d[\d.,]*(?:\^[+-]?\d+)?([a-zμµ°℃%/]*)$")


def coverage_terms(terms: Sequence[str]) -> set[str]:
    """The query's terms as term coverage counts them: a number counts as its unit, or not at all.

    Values are what the user measured or set, not topics the KB lacks: "세팅은 500sccm인데 리딩이
    480~490에서 왔다갔다" scored coverage 0.44 (the KB writes neither 480 nor 490) and was
    refused although the KB answers it. A unit ("sccm", "torr") still counts, and a name with
    digits ("vg12", "h2o") is not a number.
    """
    out: set[str] = set()
    for term in terms:
        value = _VALUE.match(term)
        if value is None:
            out.add(term)
        elif value.group(1):
            out.add(value.group(1))
    return out


def _with_kb_spelling(questions: Sequence[str], respell: Callable[[str], str]) -> list[str]:
    """`questions` and, where it differs, each one in the KB's spelling."""
    out = list(questions)
    out.extend(r for r in (respell(q) for q in questions) if r not in out)
    return out


def _normalise_text(text: str) -> str:
    return " ".join(text.casefold().split())


def _top_indices(scores: np.ndarray, n: int, mask: np.ndarray | None) -> list[int]:
    """Indices of the n best scores (> 0 for BM25 semantics handled by caller), best first."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    n = min(n, len(scores))
    if n <= 0:
        return []
    part = np.argpartition(-scores, n - 1)[:n]
    order = part[np.argsort(-scores[part], kind="stable")]
    return [int(i) for i in order if np.isfinite(scores[i])]


class SynonymExpander:
    """Finds synonym-group members mentioned in a query and returns the other members."""

    def __init__(self, groups: Sequence[Sequence[str]]) -> None:
        written = {t for g in groups for t in g}
        self.groups = [list(dict.fromkeys(g)) for g in with_letter_spellings(groups) if len(g) > 1]
        self._patterns: list[tuple[re.Pattern[str], int]] = []
        self._by_term: dict[str, re.Pattern[str]] = {}
        for gi, group in enumerate(self.groups):
            for term in group:
                pattern = self._by_term.setdefault(term, self._pattern(term, spelled=term not in written))
                self._patterns.append((pattern, gi))

    @staticmethod
    def _pattern(term: str, *, spelled: bool = False) -> re.Pattern[str]:
        """A term's pattern; a derived letter spelling ("에이엘디") must start a Hangul word,
        so it is not found inside a longer one ("피이에이엘디", PEALD)."""
        escaped = re.escape(term.strip().casefold()).replace(r"\ ", r"\s*")
        if spelled:
            escaped = r"(?<![가-힣])" + escaped
        # Latin terms must not match inside longer words (Ar in Argon, N2 in N2O).
        if re.match(r"[a-z0-9]", term.strip().casefold()):
            escaped = r"(?<![a-z0-9])" + escaped
        if re.search(r"[a-z0-9]$", term.strip().casefold()):
            escaped += r"(?![a-z0-9])"
        return re.compile(escaped)

    def most_used(self, text: str) -> list[str]:
        """Per group, the member written most often in `text` (a KB's own spelling)."""
        folded = text.casefold()
        return [max(group, key=lambda term: len(self._by_term[term].findall(folded))) for group in self.groups]

    def normalise(self, query: str, spelling: Sequence[str]) -> str:
        """`query` with every synonym-group term rewritten to `spelling[group]`.

        `spelling` holds, per group, the spelling the KB itself uses most. Only the first
        mention of each group is rewritten; longer terms are tried first so "게이트 밸브"
        is not half-rewritten through "게이트".
        """
        text = query
        for gi, group in enumerate(self.groups):
            target = spelling[gi]
            folded = text.casefold()
            for term in sorted(group, key=len, reverse=True):
                if term == target:
                    continue
                match = self._by_term[term].search(folded)
                if match:
                    text = text[: match.start()] + target + text[match.end() :]
                    break
        return text

    def expansions(self, query: str) -> list[str]:
        """Other spellings of every synonym group the query mentions."""
        text = query.casefold()
        hit_groups = [gi for pattern, gi in self._patterns if pattern.search(text)]
        out: list[str] = []
        for gi in dict.fromkeys(hit_groups):
            out.extend(t for t in self.groups[gi] if not self._by_term[t].search(text))
        return list(dict.fromkeys(out))


@dataclass
class _Fused:
    """One query's first-stage scores and fused candidates (see `HybridRetriever._fused_candidates`)."""

    terms: list[str]
    expanded: list[str]
    bm25_own: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray | None
    fused: dict[int, float]
    order: list[int]
    #: What the learned ranker needs (None without a dense model).
    inputs: RankInputs | None


class HybridRetriever:
    """BM25 + dense retrieval over one KB. Thread-safe for concurrent `search` calls."""

    def __init__(
        self,
        documents: Sequence[Document],
        index: CorpusIndex,
        tokenizer: KoreanTokenizer,
        embedder: Embedder | None,
        config: RagConfig,
        *,
        synonym_groups: Sequence[Sequence[str]] = (),
        calibration: Calibration | None = None,
        reranker: Reranker | None = None,
        ranker: LinearRanker | None = None,
    ) -> None:
        import bm25s

        self.documents = list(documents)
        #: Every id of the KB this retriever serves (refusal calibration, citation checks).
        self.document_ids = frozenset(d.id for d in self.documents)
        self.index = index
        self.tokenizer = tokenizer
        self.embedder = embedder if index.embeddings is not None else None
        self.config = config
        self.calibration = calibration or DEFAULT_CALIBRATION
        self.reranker = reranker
        #: Learned ordering of the top fused candidates (not used with a cross-encoder).
        self.ranker = ranker
        self.expander = SynonymExpander(synonym_groups)
        self._bm25 = bm25s.BM25()
        # Empty documents would make bm25s fail; an impossible token keeps rows aligned.
        self._bm25.index([t or ["\u0000"] for t in index.tokens], show_progress=False)
        self._vocab = set(self._bm25.vocab_dict)
        self._synonym_covered = self._synonym_terms_with_kb_spelling()
        #: Terms the KB talks about (its own spelling or a synonym's): query coverage and
        #: unknown names both ask this, on every search, so it is built once here.
        self._known_terms = self._vocab | self._synonym_covered
        self._keyword_sets = [
            {k.casefold() for k in (*d.keywords, d.topic)} for d in self.documents
        ]
        self._duplicate_of = self._find_duplicates()
        #: Tokenised titles and keywords: what the learned ranker matches query terms against.
        self._title_terms = [set(t) for t in tokenizer.tokenize_many([d.title for d in self.documents])]
        self._keyword_terms = [set(t) for t in tokenizer.tokenize_many([" ".join(d.keywords) for d in self.documents])]
        self._ranking_embeddings = self._with_questions(config.question_weight)
        #: Per synonym group, the spelling this KB writes most (see `kb_spelling`).
        self._kb_spelling = self.expander.most_used("\n".join(f"{d.title}\n{d.text}" for d in self.documents))
        self._lock = threading.Lock()  # bm25s scoring reuses internal buffers
        self._translation: TranslationModel | None = None
        self._translation_scorer: DocumentScorer | None = None
        self._translation_lock = threading.Lock()
        #: Character n-grams of the example questions (None: weight 0 or no example questions).
        self._question_ngrams = self._question_ngram_index(config)
        # Recent query vectors: eval asks the same questions for several systems and chat
        # users repeat themselves; the e5 query embedding is ~90% of a query's time.
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_kb(
        cls,
        kb: KnowledgeBase,
        config: RagConfig | None = None,
        *,
        kb_source: str | Path | None = None,
        show_progress: bool = True,
        reranker: Reranker | None = None,
    ) -> HybridRetriever:
        """Retriever over `kb`, loading its cached index or building it once."""
        config = config or RagConfig()
        if not kb.documents:
            raise UserError("KB에 문서가 없습니다.", "The knowledge base has no documents.", path=kb_source)
        index = load_or_build_index(
            kb,
            config.dense_model,
            config.index_dir,
            kb_source=str(Path(kb_source).resolve()) if kb_source else None,
            show_progress=show_progress,
        )
        retriever = cls(
            kb.documents,
            index,
            get_tokenizer(kb.domain_terms()),
            get_embedder(config.dense_model),
            config,
            synonym_groups=kb.synonym_groups,
            calibration=load_calibration(index.cache_dir),
            reranker=reranker or load_reranker(config.reranker),
            ranker=load_default_ranker() if config.learned_rank else None,
        )
        if retriever._uses_translation():
            retriever._translation_scorer_for_kb()  # fitted (~2 s) or loaded here, not on the first question
        return retriever

    def _with_questions(self, weight: float) -> np.ndarray | None:
        """Document vectors for ranking: normalise(passage + weight * mean question vector).

        Users ask in words the passage does not use ("라인이 길면 뭐가 문제예요?" for a passage on
        valve placement); a document's example questions carry those words. Documents
        without questions keep their passage vector.
        """
        passages = self.index.embeddings
        questions = self.index.question_vectors
        if passages is None or questions is None or weight <= 0:
            return passages
        mixed = passages + weight * questions
        norms = np.linalg.norm(mixed, axis=1, keepdims=True)
        return (mixed / np.maximum(norms, 1e-12)).astype(np.float32)

    def _synonym_terms_with_kb_spelling(self) -> set[str]:
        """Terms of synonym groups that have some spelling present in the KB.

        "퍼지" counts as covered when the KB writes "Purge": coverage measures whether the
        KB talks about the query's concepts, not whether it uses the same spelling.
        """
        covered: set[str] = set()
        for group in self.expander.groups:
            tokens = [set(self.tokenizer.tokenize(term)) for term in group]
            if any(t & self._vocab for t in tokens):
                covered.update(*tokens)
        return covered

    def kb_spelling(self, query: str) -> str:
        """`query` written with the KB's own spelling of every glossary term it mentions."""
        return self.expander.normalise(query, self._kb_spelling)

    def _find_duplicates(self) -> list[int]:
        """For each document, the index of the first document with identical text."""
        first: dict[str, int] = {}
        return [first.setdefault(_normalise_text(d.text), i) for i, d in enumerate(self.documents)]

    # ------------------------------------------------------------------ scoring
    def _bm25_scores(self, terms: list[str]) -> np.ndarray:
        terms = list(dict.fromkeys(t for t in terms if t in self._vocab))
        if not terms:
            return np.zeros(len(self.documents), dtype=np.float32)
        with self._lock:
            return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def _keyword_mask(self, keyword: str | None, synonyms: Sequence[str] = ()) -> np.ndarray | None:
        if not keyword:
            return None
        wanted = {keyword.casefold(), *(s.casefold() for s in synonyms)}
        mask = np.array([bool(ks & wanted) for ks in self._keyword_sets])
        if not mask.any():
            known = sorted({k for ks in self._keyword_sets for k in ks})[:15]
            raise UserError(
                f"키워드 '{keyword}'를 가진 문서가 없습니다.",
                f"No document has the keyword '{keyword}'.",
                hint=f"예 / e.g.: {', '.join(known)}",
            )
        return mask

    def search(
        self,
        query: str,
        top_k: int | None = None,
        filter_keyword: str | None = None,
        *,
        filter_synonyms: Sequence[str] = (),
    ) -> Retrieval:
        """Retrieve top_k passages and the absolute signals for refusal/confidence."""
        with single_thread_blas():
            return self._search(query, top_k, filter_keyword, filter_synonyms)

    def _uses_translation(self) -> bool:
        """Whether searches need the translation model: as a candidate list or a ranker feature."""
        return self.config.translation_weight > 0 or (self.ranker is not None and self.embedder is not None)

    def _question_ngram_index(self, config: RagConfig) -> QuestionNgramIndex | None:
        """The example questions' n-gram index, when it is a fusion list (~0.3 s at 2,400 questions)."""
        if config.question_ngram_weight <= 0 or not any(d.questions for d in self.documents):
            return None
        # Each question also in the KB's spelling ("제로 드리프트" -> "Zero drift"), and the query in
        # both (`_question_ngram_rank`): the n-grams compare how people ask, whichever glossary
        # spelling either side typed.
        return QuestionNgramIndex([_with_kb_spelling(d.questions, self.kb_spelling) for d in self.documents])

    def _question_ngram_rank(self, query: str, respelled: str, n: int, mask: np.ndarray | None) -> list[int]:
        """Documents by their closest example question in character n-grams (`question_ngrams`),
        the query scored as written and in the KB's spelling (`respelled`)."""
        if self._question_ngrams is None or self.config.question_ngram_weight <= 0:
            return []
        scores = self._question_ngrams.scores(query)
        if respelled != query:
            scores = np.maximum(scores, self._question_ngrams.scores(respelled))
        return [i for i in _top_indices(scores, n, mask) if scores[i] > 0]

    def _translation_listed(self) -> bool:
        """Whether the translation model's ranking is a fusion list (weight > 0, example questions)."""
        return self.config.translation_weight > 0 and bool(self.translation_model().table)

    def _translation_scores(self, query: str, terms: set[str]) -> np.ndarray | None:
        """Mean log-likelihood of the query's terms (and question words) under every document,
        or None when nothing reads it (no fusion list and no learned ranker)."""
        if not (self._translation_listed() or (self.ranker is not None and self.embedder is not None)):
            return None
        return self._translation_scorer_for_kb().scores(terms | cue_terms(query))

    def _translation_scorer_for_kb(self) -> DocumentScorer:
        """The translation model's scorer over this KB's documents, built once."""
        model = self.translation_model()
        with self._translation_lock:
            if self._translation_scorer is None:
                self._translation_scorer = model.scorer(self.index.tokens)
            return self._translation_scorer

    def _fused_candidates(
        self, query: str, top_k: int, mask: np.ndarray | None, *, rank_inputs: bool = True
    ) -> _Fused:
        """BM25, dense and translation scores of `query`, their candidate lists and their fusion
        (with the example questions' character n-gram list, `question_ngrams`).

        The translation list (weight `translation_weight`, 0.2) lifted recall@10 of the fused
        candidates, the ceiling of the learned reorder, on user-dev from 0.919 to 0.935 and on
        the held-out half of the paraphrase set from 0.920 to 0.936 (dev stays 1.000).
        `rank_inputs=False` skips what only the learned ranker reads (a search without it).
        """
        cfg = self.config
        terms = self.tokenizer.tokenize(query)
        translation = both = None
        # The KB's spelling of the query, once: the n-gram list, the translation list and the ranker read it.
        respelled = self.kb_spelling(query)
        if rank_inputs or self._translation_listed():
            # The user's spelling and the KB's: "퍼지" meets a title that says "Purge".
            both = set(terms) | (set(self.tokenizer.tokenize(respelled)) if respelled != query else set())
            translation = self._translation_scores(query, both)
        expanded = self.expander.expansions(query)
        extra = [t for t in self.tokenizer.tokenize(" ".join(expanded)) if t not in set(terms)] if expanded else []
        bm25_own = self._bm25_scores(terms)
        bm25 = bm25_own
        if extra and cfg.synonym_weight > 0:
            bm25 = bm25_own + cfg.synonym_weight * self._bm25_scores(extra)
        dense = ranking = None
        if self.embedder is not None:
            vector = self.query_vector(query)
            dense = self.index.embeddings @ vector
            ranking = dense if self._ranking_embeddings is self.index.embeddings else self._ranking_embeddings @ vector

        n = max(cfg.candidates, top_k)
        bm25_masked = bm25 if mask is None else np.where(mask, bm25, 0.0)
        bm25_rank = [i for i in _top_indices(bm25_masked, n, mask) if bm25_masked[i] > 0]
        dense_rank = _top_indices(ranking, n, mask) if ranking is not None else []
        weight = cfg.rrf_weight if dense is not None else 0.0
        translation_rank: list[int] = []
        if translation is not None and self._translation_listed():
            translation_rank = _top_indices(translation, n, mask)
        fused = rrf_fuse(
            [bm25_rank, dense_rank, translation_rank, self._question_ngram_rank(query, respelled, n, mask)],
            [1.0 - weight, weight, cfg.translation_weight, cfg.question_ngram_weight],
            k=cfg.rrf_k,
        )
        order = self._drop_duplicates(sorted(fused, key=lambda i: -fused[i]))
        inputs = None
        if rank_inputs and both is not None and dense is not None and ranking is not None and order:
            inputs = RankInputs(
                order[:RERANK_DEPTH], fused, bm25, dense, ranking, bm25_rank, dense_rank, both, translation
            )
        return _Fused(terms, expanded, bm25_own, bm25, dense, fused, order, inputs)

    def _search(
        self, query: str, top_k: int | None, filter_keyword: str | None, filter_synonyms: Sequence[str]
    ) -> Retrieval:
        cfg = self.config
        top_k = top_k or cfg.top_k
        if top_k < 1:
            raise UserError("top_k는 1 이상이어야 합니다.", "top_k must be at least 1.")
        if filter_keyword:
            filter_synonyms = [*filter_synonyms, *self.expander_synonyms(filter_keyword)]
        mask = self._keyword_mask(filter_keyword, filter_synonyms)

        ranked = self.ranker is not None and self.reranker is None
        found = self._fused_candidates(query, top_k, mask, rank_inputs=ranked)  # duplicates already dropped
        terms, bm25_own, bm25, dense, fused, order = found.terms, found.bm25_own, found.bm25, found.dense, found.fused, found.order

        rerank_scores: dict[int, float] = {}
        ordered = fused
        if self.reranker is not None and order:
            values = self.reranker(query, [self.documents[i].text for i in order])
            rerank_scores = {i: float(v) for i, v in zip(order, values, strict=True)}
            order = sorted(order, key=lambda i: -rerank_scores[i])
        elif self.ranker is not None and found.inputs is not None:
            order, ordered = reorder(order, fused, self.ranker, self.rank_features(found.inputs))

        relevance = [rerank_scores.get(i, ordered[i]) for i in order]
        if self.reranker is not None and relevance:  # cross-encoder logits may be negative
            low = min(relevance)
            relevance = [r - low + 1e-6 for r in relevance]
        chosen = mmr_select(order, relevance, self._similarity(order), top_k, cfg.mmr_lambda)

        passages = [
            self._passage(i, fused[i], bm25[i], None if dense is None else dense[i], rerank_scores.get(i))
            for i in chosen
        ]
        features = self._features(terms, bm25_own, dense, mask)
        return Retrieval(
            query=query,
            passages=passages,
            features=features,
            confidence=self.calibration.probability(features),
            expanded_terms=found.expanded,
            unknown_names=self.unknown_names(query),
            site_specific=site_specific(query),
        )

    def rank_features(self, inputs: RankInputs) -> np.ndarray:
        """Features of `inputs.order` for the learned ranker (`rank.candidate_features`)."""
        return candidate_features(inputs, self._title_terms, self._keyword_terms)

    def translation_model(self) -> TranslationModel:
        """The KB's question-to-document translation model (`translation.py`), fitted once.

        Stored next to the index (`translation.json`), whose directory is already keyed by the
        KB's content and the tokenizer version, so an edited KB gets a new one. Fitted on first
        use, which `from_kb` makes the build when the fusion list or the learned ranker needs it;
        a KB without example questions fits in no time.
        """
        with self._translation_lock:
            if self._translation is None:
                self._translation = self._load_or_fit_translation()
            return self._translation

    def _load_or_fit_translation(self) -> TranslationModel:
        cache = self.index.cache_dir / "translation.json" if self.index.cache_dir is not None else None
        if cache is not None and cache.exists():
            try:
                model = TranslationModel.from_json(read_json(cache))
            except Exception:  # a damaged cache is refitted, never fatal
                model = None
            if model is not None:
                return model
        owners = [i for i, d in enumerate(self.documents) for _ in d.questions]
        questions = [q for d in self.documents for q in d.questions]
        own = self.tokenizer.tokenize_many(questions) if questions else []
        respelled = self.tokenizer.tokenize_many([self.kb_spelling(q) for q in questions]) if questions else []
        pairs = [(set(a) | set(b) | cue_terms(q), i) for a, b, q, i in zip(own, respelled, questions, owners, strict=True)]
        model = TranslationModel.fit(pairs, self.index.tokens)
        if cache is not None:
            with contextlib.suppress(OSError):  # a read-only cache still answers, it just refits next time
                atomic_write_bytes(cache, json.dumps(model.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        return model

    def rank_sample(self, query: str) -> tuple[list[int], np.ndarray]:
        """The top fused candidates of `query` (fused order) and the learned ranker's features
        for them, exactly as `search` computes them (for fitting: `scripts/fit_ranker.py`)."""
        with single_thread_blas():
            found = self._fused_candidates(query, self.config.top_k, None)
        if found.inputs is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        return list(found.inputs.order), self.rank_features(found.inputs)

    def unknown_names(self, query: str) -> list[str]:
        """Names in `query` that occur in no KB document, as the user wrote them.

        "ASM Pulsar 장비의 PM 주기" retrieves PM documents with high confidence, yet the KB
        says nothing about ASM or Pulsar; answering from the PM passages would invent a
        vendor's schedule. A hyphenated name counts as known when all its parts are
        ("self-limiting"); synonym spellings of a KB term count as known.
        """
        known = self._known_terms
        out: list[str] = []
        for written, folded in name_terms(query):
            parts = [p for p in folded.split("-") if len(p) > 1]
            if folded in known or ("-" in folded and parts and all(p in known for p in parts)):
                continue
            if written not in out:
                out.append(written)
        return out

    def query_vector(self, query: str, cache_size: int = 512) -> np.ndarray:
        """The dense query embedding, from a small LRU cache when seen recently."""
        with self._cache_lock:
            cached = self._query_vectors.get(query)
            if cached is not None:
                self._query_vectors.move_to_end(query)
                return cached
        assert self.embedder is not None
        vector = self._embed_query(query)
        with self._cache_lock:
            self._query_vectors[query] = vector
            while len(self._query_vectors) > cache_size:
                self._query_vectors.popitem(last=False)
        return vector

    def _embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, averaged with its KB-spelling rewrite when they differ.

        The small multilingual e5 does not know that "퍼지" is "Purge" or "게이트 밸브" a
        "Gate valve": on user-dev "퍼지 왜 하는 거야?" put purge-001 75th by dense score.
        The rewrite alone loses what the user's own wording carries (some KB passages use
        the Hangul spelling too); the mean of both vectors lifted gold hit@3 on user-dev
        from 0.770 to 0.869 and hit@1 on dev from 0.888 to 0.939 (same fusion weights).
        """
        assert self.embedder is not None
        rewritten = self.kb_spelling(query)
        if rewritten == query:
            return self.embedder.encode_queries([query])[0]
        both = self.embedder.encode_queries([query, rewritten])
        mean = both[0] + both[1]
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def expander_synonyms(self, keyword: str) -> list[str]:
        """Synonym-group members of a keyword (for --filter-keyword)."""
        needle = keyword.casefold()
        return [t for g in self.expander.groups if any(needle == x.casefold() for x in g) for t in g]

    def _drop_duplicates(self, order: list[int]) -> list[int]:
        seen: set[int] = set()
        out = []
        for i in order:
            canonical = self._duplicate_of[i]
            if canonical in seen:
                continue
            seen.add(canonical)
            out.append(i)
        return out

    def _similarity(self, order: list[int]) -> np.ndarray:
        """Pairwise similarity of candidates: dense cosine, else Jaccard of BM25 terms."""
        if self.index.embeddings is not None and self.embedder is not None:
            vectors = self.index.embeddings[order]
            return vectors @ vectors.T
        sets = [set(self.index.tokens[i]) for i in order]
        sim = np.zeros((len(order), len(order)))
        for a in range(len(order)):
            for b in range(a, len(order)):
                union = len(sets[a] | sets[b]) or 1
                sim[a, b] = sim[b, a] = len(sets[a] & sets[b]) / union
        return sim

    def _features(
        self, terms: list[str], bm25_own: np.ndarray, dense: np.ndarray | None, mask: np.ndarray | None
    ) -> QueryFeatures:
        unique = coverage_terms(terms)
        known = unique & self._known_terms
        coverage = len(known) / len(unique) if unique else 0.0
        own = bm25_own  # the user's own words only: expansion would inflate the score
        if mask is not None:
            own = np.where(mask, own, 0.0)
            dense = None if dense is None else np.where(mask, dense, -1.0)
        return QueryFeatures(
            dense_top=float(dense.max()) if dense is not None and len(dense) else 0.0,
            bm25_top=float(own.max()) if len(own) else 0.0,
            coverage=float(coverage),
        )

    def _passage(
        self, i: int, fused: float, bm25: float, dense: float | None, rerank: float | None
    ) -> Passage:
        doc = self.documents[i]
        scores = {"rrf": float(fused), "bm25": float(bm25)}
        if dense is not None:
            scores["dense"] = float(dense)
        if rerank is not None:
            scores["rerank"] = float(rerank)
        return Passage(
            id=doc.id,
            title=doc.title,
            text=doc.text,
            score=float(rerank if rerank is not None else fused),
            topic=doc.topic,
            keywords=list(doc.keywords),
            scores=scores,
        )

    # ------------------------------------------------------------------ public API
    def retrieve(self, query: str, top_k: int | None = None, filter_keyword: str | None = None) -> list[Passage]:
        """Top-k passages with scores (see `search` for the refusal signals)."""
        return self.search(query, top_k=top_k, filter_keyword=filter_keyword).passages

    def in_kb_score(self, query: str) -> float:
        """Calibrated probability that the KB can answer `query` (refuse below the threshold)."""
        return self.search(query).confidence

    @property
    def threshold(self) -> float:
        """Refusal threshold: the config's override, else the calibrated one."""
        if self.config.refusal_threshold is not None:
            return float(self.config.refusal_threshold)
        return float(self.calibration.threshold)

    def set_calibration(self, calibration: Calibration, *, save: bool = True) -> None:
        """Use a newly fitted calibration and store it next to the index."""
        self.calibration = calibration
        if save and self.index.cache_dir is not None:
            atomic_write_json(self.index.cache_dir / "calibration.json", calibration.to_json())


def load_calibration(cache_dir: Path | None) -> Calibration | None:
    """The calibration stored with an index, if it was fitted."""
    if cache_dir is None or not (cache_dir / "calibration.json").exists():
        return None
    try:
        return Calibration.from_json(read_json(cache_dir / "calibration.json"))
    except Exception:
        return None


def load_reranker(name: str | None) -> Reranker | None:
    """A sentence-transformers CrossEncoder as a Reranker (only when configured)."""
    if not name:
        return None
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise UserError(
            "reranker에는 sentence-transformers가 필요합니다.",
            "The reranker needs sentence-transformers.",
            hint="pip install sentence-transformers",
        ) from exc
    try:
        model = CrossEncoder(name, device="cpu")
    except OSError as exc:
        raise UserError(f"reranker를 불러올 수 없습니다: {name}", f"Cannot load reranker {name!r}.") from exc
    lock = threading.Lock()

    def rerank(query: str, texts: list[str]) -> list[float]:
        with lock:
            return [float(s) for s in model.predict([(query, t) for t in texts])]

    return rerank
