"""Citations: which passages an answer relies on, and `[id]` tags that agree with them."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from aldlab.rag.types import Citation, Passage
from aldlab.text import CITATION_TAG
from aldlab.text import split_sentences


#: A sentence counts as supported by a passage when at least this share of its content
#: morphemes (Kiwi nouns, roots and verb stems: `aldlab.rag.tokenize`) occurs in the
#: passage. Measured on the 120 RAG rows of a cpu-demo training set (687 sentence-passage
#: pairs, each answer citing one of its three given contexts): at 0.6 the cited passage
#: reaches it for 91% of the sentences and a non-cited context from the same prompt for
#: 2.5%; attributing each sentence to its best passage only, 217 of 217 sentences went to
#: the passage the reference answer cites and none to another (0.5 lets 7.7% of the
#: non-cited pairs through, 0.7 gains little: 1.1% and 90% recall).
SUPPORT_THRESHOLD = 0.6
#: Sentences with fewer content morphemes ("네.", "참고하세요.") say too little to attribute.
MIN_SUPPORT_TERMS = 3
#: An id the answer writes is kept when its passage supports some sentence this close to that
#: sentence's best passage. A sentence copied whole from one passage (share 1.0) also shares
#: its topic words with a neighbouring context (0.6): the neighbour's id is then the wrong source.
NEAR_BEST = 0.1

def _content_terms(texts: Sequence[str], tokenizer: Any) -> list[set[str]]:
    if tokenizer is None:
        from aldlab.rag.tokenize import get_tokenizer

        tokenizer = get_tokenizer()
    return [set(terms) for terms in tokenizer.tokenize_many(list(texts))] if texts else []


def _sentence_shares(text: str, passages: Sequence[Passage], tokenizer: Any) -> list[list[float]]:
    """For each measurable sentence, the share of its content morphemes found in each passage."""
    for p in passages:  # a bare id ("purge-003에 따르면") is a reference, not content
        text = text.replace(p.id, " ")
    sentences = split_sentences(text, at_newlines=True, drop_citations=True)  # [id] tags are not content
    if not sentences or not passages:
        return []
    terms = _content_terms([*sentences, *(p.text for p in passages)], tokenizer)
    sentence_terms, passage_terms = terms[: len(sentences)], terms[len(sentences) :]
    return [
        [len(words & p_words) / len(words) for p_words in passage_terms]
        for words in sentence_terms
        if len(words) >= MIN_SUPPORT_TERMS
    ]


def supporting_passages(text: str, passages: Sequence[Passage], tokenizer: Any = None) -> dict[str, float]:
    """Passage id -> best support, for passages that are some sentence's best match >= threshold.

    Support of a sentence by a passage = share of the sentence's content morphemes found in
    the passage. Only the best passage of each sentence is credited, so a sentence whose
    words also appear in a neighbouring context does not make that context a citation.
    """
    return _best_support(_sentence_shares(text, passages, tokenizer), passages)


def _best_support(shares: list[list[float]], passages: Sequence[Passage]) -> dict[str, float]:
    found: dict[str, float] = {}
    for row in shares:
        best = max(range(len(passages)), key=lambda i: row[i])
        if row[best] >= SUPPORT_THRESHOLD:
            pid = passages[best].id
            found[pid] = max(found.get(pid, 0.0), round(row[best], 3))
    return found


def find_citations(text: str, passages: Sequence[Passage], tokenizer: Any = None) -> list[Citation]:
    """The documents an answer relies on: cited as [id], named bare, or supporting a sentence.

    Never padded with the passages that were merely given: an answer that cites nothing
    and whose sentences no passage supports has no citations, and the UI says so. A small
    model often writes the id of a neighbouring context after a sentence taken from another
    one; an id the answer writes is kept only when its passage supports one of the answer's
    sentences about as well as the best passage does (`NEAR_BEST`; or when no sentence is long
    enough to check), so the citation list names the passage the text really comes from.
    """
    known = {p.id for p in passages}
    shares = _sentence_shares(text, passages, tokenizer)
    supported_any = {
        p.id
        for i, p in enumerate(passages)
        if any(row[i] >= SUPPORT_THRESHOLD and row[i] >= max(row) - NEAR_BEST for row in shares)
    }

    def checks_out(pid: str) -> bool:
        return not shares or pid in supported_any

    how: dict[str, str] = {}
    for cid in CITATION_TAG.findall(text):
        if cid in known and checks_out(cid):
            how.setdefault(cid, "bracket")
    for p in passages:  # models often drop the brackets: "purge-003에 따르면"
        if p.id not in how and p.id in text and checks_out(p.id):
            how[p.id] = "mention"
    support = _best_support(shares, passages)
    for pid in support:
        how.setdefault(pid, "overlap")
    return [Citation(cid, kind, support.get(cid, 0.0)) for cid, kind in how.items()]


def align_written_citations(text: str, cited: Sequence[Citation], document_ids: Collection[str]) -> str:
    """Make the `[id]` tags in the answer text agree with its citation list.

    The model sometimes writes the id of a document other than the one its sentence comes
    from, even one that was not among the passages ("N2는 값이 싸서 … [interlock-021]" for a
    sentence of purge-012). `find_citations` already lists the passage that supports the
    sentence; here a written KB id that is not in that list becomes the best-supported
    passage's id, or goes when none is supported. Bracketed text that is no document id of
    this KB ("[sccm]") is left alone.
    """
    valid = {c.id for c in cited}
    supported = [c for c in cited if c.how == "overlap"]
    best = max(supported, key=lambda c: c.support).id if supported else None

    def fix(match: re.Match[str]) -> str:
        cid = match.group(1)
        if cid in valid or cid not in document_ids:
            return match.group(0)
        return f"[{best}]" if best else ""

    aligned = CITATION_TAG.sub(fix, text)
    return re.sub(r"[ \t]+([.,!?])", r"\1", re.sub(r"[ \t]{2,}", " ", aligned)).strip() if aligned != text else text


#: A citation the token limit cut off at the very end of an answer: "… 이다. [interlock-00".
_CUT_TAG = re.compile(r"\s*\[([^\[\]\s]{0,80})$")


def close_cut_citation(text: str, cited: Sequence[Citation]) -> str:
    """Finish or drop a `[id` tag cut off by the token limit at the end of `text`.

    On user-test two of 76 answers ended in "[interlock-00" and "[" (the reply hit
    `max_new_tokens` inside its last tag). The tag becomes the one cited id it is a prefix of,
    else the best-supported cited id, and goes when nothing is cited.
    """
    match = _CUT_TAG.search(text.rstrip())
    if not match:
        return text
    prefix = match.group(1)
    ids = [c.id for c in cited]
    fits = [i for i in ids if i.startswith(prefix)] if prefix else []
    supported = sorted(cited, key=lambda c: -c.support)
    chosen = fits[0] if len(fits) == 1 else (supported[0].id if supported else None)
    head = text.rstrip()[: match.start()]
    return f"{head} [{chosen}]" if chosen else head


def extract_citations(text: str, passages: Sequence[Passage], tokenizer: Any = None) -> list[str]:
    """Ids of `find_citations`, in order: bracketed, then named, then supported."""
    return [c.id for c in find_citations(text, passages, tokenizer)]


def quotes_part_of(answer: str, passage: str) -> bool:
    """Whether `answer` is some of `passage`'s sentences copied verbatim, and not all of it.

    The small model often picks the right passage, copies its first sentence or two and ends
    its turn; the sentences it left out usually carry the rest of the answer (a value, the
    check to make). Whitespace and citation tags are ignored.
    """
    flat = lambda text: " ".join(CITATION_TAG.sub(" ", text).split())  # noqa: E731
    whole = flat(passage)
    sentences = [flat(s) for s in split_sentences(answer, drop_citations=True)]
    sentences = [s for s in sentences if s]
    if not sentences or not whole:
        return False
    return all(s in whole for s in sentences) and len(" ".join(sentences)) < len(whole) - 1
