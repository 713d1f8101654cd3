"""The one sentence splitter, shared by the KB (claims, loaders), the dataset and answers.

A sentence ends at '.', '!', '?' or '。' followed by whitespace (a decimal point is not, so
"1.5 Torr" stays whole). The call sites differ only in their input, and each difference is a flag:

- `at_newlines`: a model's answer puts sentences on separate lines without a full stop
  (lists, "참고:" lines), so a line break ends a sentence too. KB prose wraps lines
  mid-sentence, so there it does not.
- `drop_citations`: an answer's "[doc-id]" tags are not content; they are replaced by a
  space before splitting.
- `glued_da`: PDF and pasted text run sentences together ("…한다.다음 단계…"), so the loader
  also splits right after "다." when no space follows.
"""

from __future__ import annotations

import functools
import re

#: A precomposed Hangul syllable (가-힣): "is this Korean text?" checks.
HANGUL = re.compile(r"[\uac00-\ud7a3]")

#: "[purge-012]" in an answer: a citation of a KB document.
CITATION_TAG = re.compile(r"\[([^\[\]\s]{1,80})\]")


@functools.lru_cache(maxsize=None)
def _sentence_end(at_newlines: bool, glued_da: bool) -> re.Pattern[str]:
    pattern = r"(?<=[.!?。])\s+"
    if at_newlines:
        pattern += r"|\n+"
    if glued_da:
        pattern += r"|(?<=다\.)\s*"
    return re.compile(pattern)


def split_sentences(text: str, *, at_newlines: bool = False, drop_citations: bool = False, glued_da: bool = False) -> list[str]:
    """Sentences of `text`, stripped, without empty ones."""
    if drop_citations:
        text = CITATION_TAG.sub(" ", text)
    return [s.strip() for s in _sentence_end(at_newlines, glued_da).split(text.strip()) if s.strip()]
