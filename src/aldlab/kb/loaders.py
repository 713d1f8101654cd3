"""Loaders for the formats users bring: legacy `docs_ald.json`, `synonyms.json`,
plain text, Markdown and PDF.

Every loader returns a `KnowledgeBase` in memory; `aldlab.kb.edit.import_into` merges it
into a native KB. Legacy ids are kept exactly (as strings) — feedback and old citations
refer to them. Documents that arrive without ids get a content-derived id, so importing
the same file twice yields the same ids instead of new numbers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import read_json, sha256_text
from aldlab.kb.schema import Document, KnowledgeBase, title_from_text
from aldlab.text import split_sentences

#: Passages longer than this are split at sentence boundaries (the shipped KB's upper bound).
MAX_PASSAGE_CHARS = 400

#: Legacy keywords -> shipped-KB topics, so imported documents land in a sensible topic.
LEGACY_TOPIC_BY_KEYWORD = {
    "ald": "ald_basics",
    "precursor": "precursor",
    "purge": "purge",
    "mfc": "mfc",
    "flow": "flow",
    "유량": "flow",
    "valve": "valve",
    "밸브": "valve",
    "gate valve": "valve",
    "압력": "pressure",
    "pressure": "pressure",
    "챔버": "chamber",
    "웨이퍼": "wafer",
    "vg12": "vacuum_gauge",
    "vg13": "vacuum_gauge",
    "로드락": "loadlock",
    "플라즈마": "plasma",
    "plasma": "plasma",
    "장비 구조": "equipment",
    "이송": "equipment",
    "인터락": "interlock",
}


def load_any(path: Path) -> KnowledgeBase:
    """Dispatch on the file type: .json (legacy), .txt, .md, .pdf, or a folder of those."""
    if path.is_dir():
        return _load_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_legacy_json(path)
    if suffix in {".txt", ".md", ".markdown"}:
        return load_text(path)
    if suffix == ".pdf":
        return load_pdf(path)
    raise UserError(
        f"지원하지 않는 파일 형식입니다: {suffix or '(확장자 없음)'}",
        f"Unsupported file type: {suffix or '(no extension)'}",
        path=path,
        hint="지원 형식 / supported: kb directory, .json (docs_ald.json), .txt, .md, .pdf",
    )


def _load_folder(folder: Path) -> KnowledgeBase:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".json", ".txt", ".md", ".pdf"})
    if not files:
        raise UserError("가져올 파일이 없습니다.", "No importable files in folder.", path=folder)
    merged = KnowledgeBase(documents=[], name=folder.name)
    for file in files:
        part = load_any(file)
        merged.documents.extend(part.documents)
        merged.keywords = list(dict.fromkeys([*merged.keywords, *part.keywords]))
        merged.synonym_groups = merge_synonym_groups(merged.synonym_groups, part.synonym_groups)
    return merged


# ---------------------------------------------------------------- legacy JSON


def load_legacy_json(path: Path) -> KnowledgeBase:
    """Read any of the three legacy shapes, or a legacy `synonyms.json`."""
    data = read_json(path)
    if isinstance(data, dict) and "synonym_groups" in data and "documents" not in data:
        return KnowledgeBase(documents=[], name=path.stem, synonym_groups=_synonym_groups(data, path))
    if isinstance(data, dict) and "documents" in data:
        rows = data["documents"]
        if not isinstance(rows, list):
            raise UserError("'documents'는 목록이어야 합니다.", "'documents' must be a list.", path=path)
        docs = [_legacy_row(row, i, path) for i, row in enumerate(rows)]
        groups = _synonym_groups(data, path) if "synonym_groups" in data else []
    elif isinstance(data, list):
        _reject_non_kb_rows(data, path)
        docs = [_legacy_row(row, i, path) for i, row in enumerate(data)]
        groups = []
    elif isinstance(data, dict):
        _reject_non_kb(data, path)
        docs = _keyword_map_rows(data, path)
        groups = []
    else:
        raise UserError(
            "알 수 없는 JSON 구조입니다.",
            "Unrecognised JSON layout.",
            path=path,
            hint='{"documents":[{"id","keywords","text"}]}, [{"keyword","text"}], {"키워드": ["텍스트", ...]}',
        )
    keywords = list(dict.fromkeys(k for d in docs for k in d.keywords))
    return KnowledgeBase(documents=docs, name=path.stem, keywords=keywords, synonym_groups=groups)


#: What a KB JSON looks like, for the "this is not a KB" message.
KB_SHAPES = '{"documents": [{"id", "keywords", "text"}]}, [{"keyword", "text"}], {"키워드": ["텍스트", ...]}'
#: Keys of JSON files users mistake for a KB, with where they belong instead.
KNOWN_NON_KB = {
    "feedbacks": "피드백 파일은 `aldlab data build --feedback 파일`로 주세요 / feedback goes to `aldlab data build --feedback FILE`",
    "messages": "대화 데이터셋은 KB가 아닙니다 / a chat dataset is not a KB",
}


def _not_a_kb(path: Path, found: str, hint: str | None = None) -> UserError:
    return UserError(
        f"KB 파일이 아닙니다: {path.name} ({found})",
        f"This is not a KB: {path.name} ({found}); a KB JSON needs {KB_SHAPES}",
        path=path,
        hint=hint or f"KB 형식 / KB shapes: {KB_SHAPES}",
    )


def _reject_non_kb(data: dict[str, Any], path: Path) -> None:
    """A keyword map holds only strings or lists of strings; anything else is another kind of file.

    Without this check `feedback_data.json` fails deep inside as "'feedbacks'에 빈 텍스트가
    있습니다", which sends the user looking for an empty text that does not exist.
    """
    keys = ", ".join(repr(k) for k in list(data)[:6])
    for key in data:
        if key in KNOWN_NON_KB:
            raise _not_a_kb(path, f"keys {keys}", KNOWN_NON_KB[key])
    for key, value in data.items():
        texts = value if isinstance(value, list) else [value]
        if not all(isinstance(t, str) for t in texts):
            raise _not_a_kb(path, f"keys {keys}; '{key}' holds {type(texts[0]).__name__ if texts else 'nothing'}, not text")


def _reject_non_kb_rows(rows: list[Any], path: Path) -> None:
    """A list KB holds objects with a 'text'; a list of anything else is not a KB."""
    objects = [r for r in rows if isinstance(r, dict)]
    if rows and not any("text" in r for r in objects):
        seen = sorted({k for r in objects[:20] for k in r})[:6]
        raise _not_a_kb(path, f"list items have keys {', '.join(map(repr, seen)) or '(none)'}; no 'text'")


def _legacy_row(row: Any, index: int, path: Path) -> Document:
    where = f"{path}: documents[{index}]"
    if not isinstance(row, dict):
        raise UserError("문서는 객체여야 합니다.", "Each document must be an object.", path=where)
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise UserError("text가 비어 있습니다.", "Document text is empty or missing.", path=where)
    keywords = row.get("keywords", row.get("keyword", []))
    if isinstance(keywords, str):
        keywords = [keywords]
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise UserError("keywords는 문자열 목록이어야 합니다.", "keywords must be a list of strings.", path=where)
    doc_id = str(row["id"]) if row.get("id") is not None else content_id(text, prefix="legacy")
    return Document(
        id=doc_id,
        title=str(row.get("title") or title_from_text(text)),
        text=text.strip(),
        keywords=list(keywords),
        topic=str(row.get("topic") or topic_for_keywords(keywords)),
        source=str(row.get("source") or f"legacy:{path.name}"),
        origin=where,
    )


def _keyword_map_rows(data: dict[str, Any], path: Path) -> list[Document]:
    docs: list[Document] = []
    for keyword, texts in data.items():
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list):
            raise UserError(
                f"'{keyword}' 값은 문자열 목록이어야 합니다.", f"Value of '{keyword}' must be a list of strings.", path=path
            )
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"'{keyword}'에 빈 텍스트가 있습니다.", f"Empty text under '{keyword}'.", path=path)
            docs.append(
                Document(
                    id=content_id(text, prefix="legacy"),
                    title=title_from_text(text),
                    text=text.strip(),
                    keywords=[keyword],
                    topic=topic_for_keywords([keyword]),
                    source=f"legacy:{path.name}",
                )
            )
    return docs


def _synonym_groups(data: dict[str, Any], path: Path) -> list[list[str]]:
    groups = data.get("synonym_groups")
    if not isinstance(groups, list) or not all(
        isinstance(g, list) and all(isinstance(t, str) for t in g) for g in groups
    ):
        raise UserError(
            "synonym_groups는 문자열 목록의 목록이어야 합니다.",
            "synonym_groups must be a list of lists of strings.",
            path=path,
        )
    return [list(g) for g in groups]


def merge_synonym_groups(existing: list[list[str]], incoming: list[list[str]]) -> list[list[str]]:
    """Union groups that share a term (case-insensitive), keeping first-seen spelling order."""
    groups = [list(g) for g in existing]
    for group in incoming:
        keys = {t.casefold() for t in group}
        hits = [g for g in groups if keys & {t.casefold() for t in g}]
        merged: list[str] = []
        for g in [*hits, group]:
            merged.extend(t for t in g if t.casefold() not in {m.casefold() for m in merged})
        groups = [g for g in groups if g not in hits] + [merged]
    return groups


def topic_for_keywords(keywords: list[str]) -> str:
    """The shipped-KB topic of the first keyword we recognise, else 'general'."""
    for keyword in keywords:
        topic = LEGACY_TOPIC_BY_KEYWORD.get(keyword.casefold())
        if topic:
            return topic
    return "general"


def content_id(text: str, prefix: str) -> str:
    """A stable id derived from the text, so re-importing never invents new numbers."""
    return f"{prefix}-{sha256_text(text.strip())[:10]}"



# ---------------------------------------------------------------- text, Markdown, PDF

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def split_passages(text: str, max_chars: int = MAX_PASSAGE_CHARS) -> list[str]:
    """Paragraphs, with long ones cut at sentence ends into chunks of at most `max_chars`."""
    passages: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= max_chars:
            passages.append(para)
            continue
        chunk = ""
        for sentence in split_sentences(para, glued_da=True):
            if chunk and len(chunk) + 1 + len(sentence) > max_chars:
                passages.append(chunk)
                chunk = ""
            chunk = f"{chunk} {sentence}".strip()
            while len(chunk) > max_chars:  # a single sentence longer than the limit
                passages.append(chunk[:max_chars])
                chunk = chunk[max_chars:]
        if chunk:
            passages.append(chunk)
    return passages


def load_text(path: Path) -> KnowledgeBase:
    """Plain text or Markdown: Markdown headings become titles of the passages below them."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError("UTF-8 텍스트가 아닙니다.", "File is not UTF-8 text.", path=path) from exc
    docs: list[Document] = []
    for title, body in _sections(raw):
        for passage in split_passages(body):
            docs.append(_passage_doc(passage, title, path))
    if not docs:
        raise UserError("문서에서 텍스트를 찾지 못했습니다.", "No text found in file.", path=path)
    return KnowledgeBase(documents=docs, name=path.stem)


def _sections(raw: str) -> list[tuple[str | None, str]]:
    sections: list[tuple[str | None, str]] = []
    title: str | None = None
    lines: list[str] = []
    for line in raw.splitlines():
        match = _HEADING.match(line.strip())
        if match:
            sections.append((title, "\n".join(lines)))
            title, lines = match.group(2).strip(), []
        else:
            lines.append(line)
    sections.append((title, "\n".join(lines)))
    return [(t, b) for t, b in sections if b.strip()]


def _passage_doc(passage: str, title: str | None, path: Path, page: int | None = None) -> Document:
    slug = re.sub(r"[^0-9A-Za-z가-힣]+", "-", path.stem).strip("-").lower() or "doc"
    source = f"{path.name}#p{page}" if page else path.name
    return Document(
        id=content_id(passage, prefix=slug),
        title=title or title_from_text(passage),
        text=passage,
        keywords=[],
        topic="general",
        source=source,
    )


def load_pdf(path: Path) -> KnowledgeBase:
    """Extract text page by page with pypdf and split it into passages."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, OSError, ValueError) as exc:
        raise UserError("PDF를 읽을 수 없습니다.", f"Cannot read PDF: {exc}", path=path) from exc
    docs = [
        _passage_doc(passage, None, path, page=number)
        for number, page_text in enumerate(pages, start=1)
        for passage in split_passages(page_text)
    ]
    if not docs:
        raise UserError(
            "PDF에서 텍스트를 찾지 못했습니다 (스캔 이미지일 수 있음).",
            "No extractable text in PDF (it may be a scanned image).",
            path=path,
            hint="OCR 후 .txt로 가져오세요 / OCR it and import the .txt",
        )
    return KnowledgeBase(documents=docs, name=path.stem)
