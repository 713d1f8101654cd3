"""Open WebUI's own task prompts, recognised and answered without retrieval or a model.

Open WebUI (an OpenAI-compatible chat front end) asks the chat model for small chores
after each answer: a chat title, tags, follow-up suggestions, search queries for its own
RAG, text completion. Each is one user message built from a template in
`backend/open_webui/config.py` (`DEFAULT_*_GENERATION_PROMPT_TEMPLATE`): instructions that
open with "### Task:", the JSON shape to return, and the chat as
`<chat_history>\\nUSER: …\\nASSISTANT: …\\n</chat_history>`. Open WebUI then cuts the
reply from the first "{" to the last "}" and reads one key (`title`, `tags`, `follow_ups`,
`queries`, `text`); older releases asked for a bare title line.

Sent through the RAG pipeline such a prompt was refused ("관련 정보가 부족합니다"), so
every chat was titled with the refusal. The fine-tuned 270M model was never trained on
these chores either, so they are answered here by rules: deterministic, instant, outside
the generation queue, and not written to the answer log (they are not questions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["title", "tags", "follow_ups", "queries", "autocomplete"]

_HISTORY = re.compile(r"<chat_history>\s*(.*?)\s*</chat_history>", re.S)
_TURN = re.compile(r"^(USER|ASSISTANT|SYSTEM):[ \t]?", re.M)
#: The JSON key each task's template asks for, checked in this order. Only the template's
#: own text is searched (the chat history is cut out first), so a question that happens
#: to say "tags" does not change which task it is.
_KEYS: tuple[tuple[TaskKind, str], ...] = (
    ("follow_ups", '"follow_ups"'),
    ("queries", '"queries"'),
    ("tags", '"tags"'),
    ("title", '"title"'),
    ("autocomplete", '"text"'),
)
#: A title is at most this many words and characters (the templates ask for 2-5 words).
TITLE_WORDS = 5
TITLE_CHARS = 40
#: The broad tag every aldlab chat gets; the specific ones are KB keywords found in the chat.
DOMAIN_TAG = "ALD"
MAX_SPECIFIC_TAGS = 3


@dataclass(frozen=True)
class ClientTask:
    """A recognised task prompt: which chore, the chat it is about, whether JSON is wanted."""

    kind: TaskKind
    user_turns: tuple[str, ...]
    wants_json: bool = True


def detect_task(prompt: str) -> ClientTask | None:
    """The Open WebUI task this user message is, or None for an ordinary question.

    A task prompt carries a `<chat_history>` block and instructions that open with
    "### Task" (every current template) or speak of a title (the pre-0.5 title template,
    which wanted the bare title).
    """
    found = _HISTORY.search(prompt)
    if found is None:
        return None
    instructions = prompt[: found.start()] + prompt[found.end() :]
    turns = tuple(text for role, text in parse_history(found.group(1)) if role == "USER" and text)
    for kind, key in _KEYS:
        if key in instructions:
            return ClientTask(kind, turns)
    if "title" in instructions.lower():
        return ClientTask("title", turns, wants_json=False)
    return None


def parse_history(block: str) -> list[tuple[str, str]]:
    """(ROLE, text) turns of Open WebUI's `ROLE: text` lines; a turn may span lines."""
    marks = list(_TURN.finditer(block))
    return [
        (mark.group(1), block[mark.end() : marks[i + 1].start() if i + 1 < len(marks) else len(block)].strip())
        for i, mark in enumerate(marks)
    ]


def task_reply(task: ClientTask, keywords: Iterable[str] = ()) -> str:
    """The reply text Open WebUI parses: a JSON object (or, for old releases, the bare title).

    `keywords` are the KB's keywords: the specific tags are the ones the chat mentions.
    """
    if task.kind == "title":
        title = make_title(task.user_turns[0] if task.user_turns else "")
        return json.dumps({"title": title}, ensure_ascii=False) if task.wants_json else title
    if task.kind == "tags":
        return json.dumps({"tags": make_tags(task.user_turns, keywords)}, ensure_ascii=False)
    if task.kind == "queries":
        # Open WebUI searches its own knowledge with these; the user's words are the best query.
        last = " ".join(task.user_turns[-1].split())[:200] if task.user_turns else ""
        return json.dumps({"queries": [last] if last else []}, ensure_ascii=False)
    if task.kind == "follow_ups":
        # Suggestions the KB cannot back would be guesses; Open WebUI shows none for [].
        return json.dumps({"follow_ups": []}, ensure_ascii=False)
    return json.dumps({"text": ""}, ensure_ascii=False)


def make_title(question: str) -> str:
    """The first question, cut at a word boundary to a few words, without closing punctuation.

    "ALD에서 퍼지 시간이 너무 짧으면 어떤 문제가 생기나요?" -> "ALD에서 퍼지 시간이 너무 짧으면".
    """
    words: list[str] = []
    for word in question.split():
        if len(words) == TITLE_WORDS or (words and len(" ".join([*words, word])) > TITLE_CHARS):
            break
        words.append(word)
    title = " ".join(words)[:TITLE_CHARS].rstrip(" ?!.,;:·…")
    return title or "ALD 질문"


def make_tags(user_turns: Iterable[str], keywords: Iterable[str]) -> list[str]:
    """"ALD", then up to three KB keywords in the order the user first wrote them."""
    text = " ".join(user_turns).casefold()
    found: dict[str, int] = {}
    for keyword in keywords:
        at = text.find(keyword.casefold()) if keyword.strip() else -1
        if at >= 0 and keyword.casefold() != DOMAIN_TAG.casefold():
            found.setdefault(keyword, at)
    specific = sorted(found, key=lambda k: (found[k], -len(k)))[:MAX_SPECIFIC_TAGS]
    return [DOMAIN_TAG, *specific]
