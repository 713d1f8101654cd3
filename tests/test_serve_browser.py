"""Browser tests: Playwright drives Debian's chromium against the real web UI.

No browser download: `.ci/run` installs the `chromium` Debian package
(scripts/install_browser.sh); without /usr/bin/chromium these tests are skipped.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aldlab.kb.schema import Document
from aldlab.prompts import refusal_answer
from aldlab.rag.types import Answer, AskOptions, Plan
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.improve_runs import ImproveRequest, ImproveResult
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import TINY_DOCUMENTS, serve_in_thread, write_tiny_kb
from aldlab.store import Store
from test_eval_report import report  # noqa: F401  (fixture: a report.html to photograph)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-admin-token"
XSS_TEXT = '악성 문서 <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> 스크립트주입 테스트'
#: Markdown as a passage may hold it; "contexts only" shows the passage whole, so the
#: renderer meets every construct, and HTML inside it must stay text.
MARKDOWN_TEXT = (
    "**마크다운** 체크리스트:\n- 가스 라인 `누설` 확인\n- 히터 **온도** 기록\n\n"
    '1. 첫째 단계\n2. 둘째 단계 <img src=x onerror="window.__xss=5">\n\n```\ncode <b>raw</b>\n```'
)
KOREAN_ADMIN = "김공정"
#: The browser's language: the labels follow it until the KO/EN switch is used (issue 25).
KOREAN = "ko-KR"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run scripts/install_browser.sh"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    root = tmp_path_factory.mktemp("browser")
    evil = Document(id="xss-001", title='<b onmouseover="window.__xss=3">굵게</b>', text=XSS_TEXT, keywords=[], topic="basics")
    markdown = Document(id="md-001", title="마크다운 체크리스트", text=MARKDOWN_TEXT, keywords=[], topic="basics")
    kb = write_tiny_kb(root / "kb", [*TINY_DOCUMENTS, evil, markdown])
    store = Store(root / "serve.sqlite3")
    assistant = FakeAssistant(kb, token_delay_s=0.01)
    app = create_app(assistant, store, ServeSettings(kb=str(kb), admin_token=TOKEN))
    with serve_in_thread(app) as url:
        yield url, store


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, server: tuple[str, Store]) -> Iterator[Any]:
    context = browser.new_context(locale=KOREAN)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server[0] + "/")
    yield page
    context.close()
    assert not errors, errors


def ask(page: Any, question: str) -> Any:
    page.fill("#question", question)
    page.click("#ask-button")
    card = page.locator(".answer-card").last
    card.locator(".feedback").wait_for(state="visible", timeout=15000)
    return card


def test_ask_shows_a_cited_answer_and_the_document(page: Any) -> None:
    card = ask(page, "TMA 전구체는 무엇인가요?")
    assert "[tiny-003]" in card.locator(".answer-text").inner_text()
    badge = card.locator(".confidence-badge")
    # The badge names what it measures: retrieval, not the answer (issue 25).
    assert "검색 신뢰도" in badge.inner_text() and "retrieval" not in badge.inner_text()  # one language at a time
    assert badge.get_attribute("title")
    assert "1위 문서" in card.locator(".support-badge").inner_text()  # support is shown apart
    assert "모델에게 준 문서" in card.locator(".contexts-note").inner_text()
    assert card.locator(".confidence-explanation").inner_text()
    card.locator(".citation[data-doc-id='tiny-003']").click()
    dialog = page.locator("#doc-dialog")
    dialog.wait_for(state="visible")
    assert "트라이메틸알루미늄" in page.locator("#doc-text").inner_text()
    page.click("#doc-close")
    # The [tiny-003] written in the answer is a link to the passage too.
    card.locator(".answer-text .cite-link[data-doc-id='tiny-003']").click()
    dialog.wait_for(state="visible")
    assert "트라이메틸알루미늄" in page.locator("#doc-text").inner_text()
    page.click("#doc-close")
    # The history tab remembers the question.
    page.click("#tab-history")
    assert "TMA 전구체는 무엇인가요?" in page.locator("#history-list").inner_text()


def test_model_switch_uses_the_fine_tuned_adapter(page: Any) -> None:
    page.wait_for_selector("#model-select option[value='ald-ft']", state="attached")
    page.select_option("#model-select", "ald-ft")
    card = ask(page, "퍼지 단계의 역할")
    assert card.locator(".model-tag").inner_text() == "ald-ft"
    assert "(ald-ft)" in card.locator(".answer-text").inner_text()


def test_feedback_lands_in_sqlite(page: Any, server: tuple[str, Store]) -> None:
    card = ask(page, "ALD 자기제한 반응")
    answer_id = card.get_attribute("data-answer-id")
    card.locator(".fb-dislike").click()
    card.locator(".fb-comment").fill("너무 짧아요")
    card.locator(".fb-correction").fill("ALD는 자기제한 표면 반응을 이용한 박막 증착법이다.")
    card.locator(".fb-submit").click()
    page.wait_for_function(
        "el => el.textContent.includes('감사')", arg=card.locator(".fb-status").element_handle(), timeout=10000
    )
    with sqlite3.connect(server[1].path) as conn:
        row = conn.execute(
            "SELECT f.rating, f.comment, f.correction, a.question FROM feedback f JOIN answers a ON a.id = f.answer_id"
            " WHERE f.answer_id = ?",
            (answer_id,),
        ).fetchone()
    assert row == ("dislike", "너무 짧아요", "ALD는 자기제한 표면 반응을 이용한 박막 증착법이다.", "ALD 자기제한 반응")


def test_html_in_documents_is_shown_as_text(page: Any) -> None:
    card = ask(page, "악성 스크립트주입 테스트")
    answer = card.locator(".answer-text")
    assert "<img src=x" in answer.inner_text()
    citation = card.locator(".citation[data-doc-id='xss-001']")
    assert "<b onmouseover" in citation.inner_text()
    citation.click()
    page.locator("#doc-dialog").wait_for(state="visible")
    assert "<script>window.__xss=2</script>" in page.locator("#doc-text").inner_text()
    assert page.locator("#messages img, #doc-dialog img, #messages b, #doc-dialog script").count() == 0
    assert page.evaluate("window.__xss") is None


def test_admin_tab_lists_and_adds_documents(page: Any, server: tuple[str, Store]) -> None:
    page.click("#tab-admin")
    page.fill("#admin-token", TOKEN)
    page.fill("#admin-actor", KOREAN_ADMIN)  # not ISO-8859-1: it used to break login in fetch
    page.click("#admin-connect")
    page.wait_for_selector(".kb-open[data-doc-id='tiny-001']")
    assert page.locator("#kb-list b").count() == 0  # the HTML title is text here too
    page.click("#kb-new")
    page.fill("#kb-id", "tiny-200")
    page.fill("#kb-title", "웹에서 추가한 문서")
    page.fill("#kb-topic", "basics")
    page.fill("#kb-text", "브라우저 관리자 탭에서 추가한 ALD 문서 본문.")
    page.fill("#kb-questions", "웹에서 추가한 거 뭐야?\n\n  관리자 탭 문서 어디 있어? ")
    page.click("#kb-save")
    page.wait_for_selector(".kb-open[data-doc-id='tiny-200']")
    edits = server[1].list_kb_edits(doc_id="tiny-200")
    assert edits[0]["action"] == "add" and edits[0]["actor"] == KOREAN_ADMIN
    # How people ask for it: one per line, blank lines and spaces dropped, shown again on edit.
    assert page.input_value("#kb-questions") == "웹에서 추가한 거 뭐야?\n관리자 탭 문서 어디 있어?"
    from playwright.sync_api import expect

    expect(page.locator("#kb-index-status")).to_contain_text("색인 완료", timeout=10_000)


def test_wrong_admin_token_is_reported(page: Any) -> None:
    page.click("#tab-admin")
    page.fill("#admin-token", "wrong")
    page.click("#admin-connect")
    # A locator assertion, not wait_for_function: a string predicate is evaluated with eval, which
    # the page's CSP (script-src 'self') refuses when the first check does not already pass.
    from playwright.sync_api import expect

    expect(page.locator("#admin-status")).to_contain_text("토큰", timeout=10_000)
    assert page.locator("#admin-area").is_hidden()


class SlowUncitedAssistant(FakeAssistant):
    """Waits like the CPU demo does, then answers without citing (issue 16's base model)."""

    def run(self, plan: Any, **kwargs: Any) -> Iterator[Any]:
        for item in super().run(plan, **kwargs):
            if not isinstance(item, str):
                item.text, item.citations, item.citation_details = "길게는 100 ms, 짧게는 10 ms", [], []
                yield item.text
                yield item


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser-slow")
    kb = write_tiny_kb(root / "kb")
    assistant = SlowUncitedAssistant(kb, models=("base",), delay_s=2.5)
    settings = ServeSettings(kb=str(kb), base_model_warning=True)
    with serve_in_thread(create_app(assistant, Store(root / "s.sqlite3"), settings)) as url:
        yield url


def test_fine_tuned_model_is_preselected(page: Any) -> None:
    page.wait_for_selector("#model-select option[value='ald-ft']", state="attached")
    page.wait_for_function("document.querySelector('#model-select').value === 'ald-ft'")
    assert page.locator("#base-warning").is_hidden()


def test_waiting_shows_status_and_contexts_then_says_no_citation(browser: Any, slow_server: str) -> None:
    page = browser.new_page(locale=KOREAN)
    page.goto(slow_server + "/")
    page.wait_for_selector("#model-select option[value='base']", state="attached")
    assert page.locator("#base-warning").is_visible()  # base model only: the user is told
    page.fill("#question", "퍼지 단계의 역할은?")
    page.click("#ask-button")
    card = page.locator(".answer-card").last
    # within a second, long before the 2.5 s "generation" ends: status and contexts
    card.locator(".context-open[data-doc-id='tiny-002']").wait_for(state="visible", timeout=1500)
    status = card.locator(".status-line")
    assert status.is_visible() and "답변 생성 중" in status.inner_text()
    assert card.locator(".answer-text").inner_text() == ""
    card.locator(".feedback").wait_for(state="visible", timeout=15000)
    assert status.is_hidden()
    assert "인용 없음" in card.locator(".citations").inner_text()
    assert card.locator(".citation").count() == 0  # the context is not shown as a citation ...
    assert card.locator(".context-open[data-doc-id='tiny-002']").is_visible()  # ... but stays a context
    page.close()


def test_admin_reviews_feedback_before_it_can_be_trained_on(page: Any, server: tuple[str, Store]) -> None:
    card = ask(page, "TMA 전구체 반응")
    card.locator(".fb-dislike").click()
    card.locator(".fb-correction").fill("TMA는 물과 반응해 Al2O3를 만든다.")
    card.locator(".fb-submit").click()
    page.wait_for_function("el => el.textContent.includes('검토')", arg=card.locator(".fb-status").element_handle())
    feedback_id = next(r["feedback_id"] for r in server[1].iter_feedback_rows(status="pending")
                       if r["correction"] == "TMA는 물과 반응해 Al2O3를 만든다.")
    page.click("#tab-admin")
    page.fill("#admin-token", TOKEN)
    page.fill("#admin-actor", KOREAN_ADMIN)
    page.click("#admin-connect")
    item = page.locator(f".review-item[data-feedback-id='{feedback_id}']")
    item.wait_for(state="visible")
    assert "TMA 전구체 반응" in item.inner_text() and "Al2O3를 만든다" in item.inner_text()
    item.locator(".review-approve").click()
    item.wait_for(state="detached")
    row = next(r for r in server[1].iter_feedback_rows(status="approved") if r["feedback_id"] == feedback_id)
    assert row["review"]["reviewer"] == KOREAN_ADMIN


def test_approving_after_the_cited_document_changed_asks_first(page: Any, server: tuple[str, Store]) -> None:
    import httpx

    url, store = server
    card = ask(page, "TMA 전구체 반응 속도")
    card.locator(".fb-like").click()
    card.locator(".fb-submit").click()
    page.wait_for_function("el => el.textContent.includes('검토')", arg=card.locator(".fb-status").element_handle())
    row = next(r for r in store.iter_feedback_rows(status="pending") if r["question"] == "TMA 전구체 반응 속도")
    cited = row["contexts"][0]["id"]
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Aldlab-Actor": "kim"}
    edited = httpx.put(f"{url}/api/admin/documents/{cited}", json={"text": "바뀐 본문: 승인 전에 고친 문서."}, headers=headers)
    assert edited.status_code == 200, edited.text
    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#tab-admin")
    page.fill("#admin-token", TOKEN)
    page.fill("#admin-actor", KOREAN_ADMIN)
    page.click("#admin-connect")
    item = page.locator(f".review-item[data-feedback-id='{row['feedback_id']}']")
    item.locator(".review-approve").click()
    item.wait_for(state="detached")
    assert dialogs and cited in dialogs[0] and "그래도 승인할까요" in dialogs[0]
    approved = next(r for r in store.iter_feedback_rows(status="approved") if r["feedback_id"] == row["feedback_id"])
    assert approved["review"]["kb_changed"]


# ---------------------------------------------------------------- issue 25: the chat page


class GateRefusingAssistant(FakeAssistant):
    """Refuses questions containing "거절" at the gate before the model, as the real
    Assistant's refusal gate does, with the retrieved passages still in the answer."""

    def plan(self, question: str, options: AskOptions = AskOptions()) -> Plan:
        plan = super().plan(question, options)
        if "거절" in question and plan.passages:
            plan.final = Answer(
                question=question, text=refusal_answer("검색 신뢰도가 낮습니다."), passages=plan.passages,
                confidence=0.2, refused=True, model=options.model,
            )
        return plan

    def run(self, plan: Plan, **kwargs: Any) -> Iterator[Any]:
        if plan.final is not None:
            yield plan.final.text
            yield plan.final
            return
        yield from super().run(plan, **kwargs)


@pytest.fixture(scope="module")
def slow_token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tokens every 0.25 s (tiny-001's answer takes ~5 s): time to press Stop mid-answer."""
    root = tmp_path_factory.mktemp("browser-tokens")
    kb = write_tiny_kb(root / "kb")
    assistant = GateRefusingAssistant(kb, token_delay_s=0.25)
    with serve_in_thread(create_app(assistant, Store(root / "s.sqlite3"), ServeSettings(kb=str(kb)))) as url:
        yield url


def open_page(browser: Any, url: str, **context_options: Any) -> tuple[Any, Any, list[str]]:
    """A page in a fresh context (viewport, colour scheme, permissions), its page errors collected."""
    context = browser.new_context(**{"locale": KOREAN, **context_options})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_selector("#model-select option", state="attached")
    return context, page, errors


def test_stop_keeps_the_partial_answer_and_says_stopped(browser: Any, slow_token_server: str) -> None:
    from playwright.sync_api import expect

    context, page, errors = open_page(browser, slow_token_server)
    page.fill("#question", "ALD 자기제한 반응")
    page.click("#ask-button")
    button = page.locator("#ask-button")
    expect(button).to_contain_text("정지")  # Ask became Stop while the answer streams
    card = page.locator(".answer-card").last
    expect(card.locator(".answer-text")).to_contain_text("전구체", timeout=10_000)  # a few tokens in
    button.click()
    expect(card.locator(".stopped-note")).to_be_visible()
    assert "정지됨" in card.locator(".stopped-note").inner_text()
    expect(button).to_contain_text("질문")
    partial = card.locator(".answer-text").inner_text()
    assert partial.startswith("ALD는") and "[tiny-001]" not in partial  # kept, and not the whole answer
    page.wait_for_timeout(600)  # no more tokens arrive after Stop
    assert card.locator(".answer-text").inner_text() == partial
    assert card.locator(".feedback").is_hidden()  # nothing was logged to rate
    assert card.locator(".regenerate").is_visible() and card.locator(".copy-answer").is_visible()
    assert page.locator("#chat-error").is_hidden()  # a stop is not an error
    context.close()
    assert not errors, errors


def test_copy_and_regenerate(browser: Any, server: tuple[str, Store]) -> None:
    context, page, errors = open_page(browser, server[0], permissions=["clipboard-read", "clipboard-write"])
    card = ask(page, "TMA 전구체 반응식")
    first_id = card.get_attribute("data-answer-id")
    card.locator(".copy-answer").click()
    from playwright.sync_api import expect

    expect(card.locator(".copy-answer")).to_contain_text("복사됨")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == card.locator(".answer-text").inner_text() and "[tiny-003]" in copied
    card.locator(".regenerate").click()
    fresh = page.locator(".answer-card").last
    fresh.locator(".feedback").wait_for(state="visible", timeout=15_000)
    assert page.locator(".answer-card").count() == 1  # replaced in place, not appended
    assert fresh.get_attribute("data-answer-id") not in (None, first_id)
    assert "[tiny-003]" in fresh.locator(".answer-text").inner_text()
    context.close()
    assert not errors, errors


def test_markdown_is_rendered_and_html_stays_text(page: Any) -> None:
    page.check("#context-only")  # the passage is shown whole: every Markdown construct
    card = ask(page, "마크다운 체크리스트")
    text = card.locator(".answer-text")
    assert text.locator("strong", has_text="마크다운").count() == 1
    assert text.locator("ul > li").count() == 2 and text.locator("ol > li").count() == 2
    assert text.locator("li code").inner_text() == "누설"
    assert text.locator("pre code").inner_text() == "code <b>raw</b>"
    assert "<img src=x" in text.inner_text()
    assert page.locator("#messages img, #messages b, #messages script").count() == 0
    assert page.evaluate("window.__xss") is None
    assert "검색된 문서 (모델 없음)" in card.locator(".contexts-note").inner_text()
    text.locator(".cite-link[data-doc-id='md-001']").click()
    page.locator("#doc-dialog").wait_for(state="visible")
    assert "체크리스트" in page.locator("#doc-text").inner_text()


def test_refusal_before_the_model_does_not_say_given_to_the_model(browser: Any, slow_token_server: str) -> None:
    context, page, errors = open_page(browser, slow_token_server)
    page.fill("#question", "퍼지 단계 거절")
    page.click("#ask-button")
    card = page.locator(".answer-card").last
    card.locator(".feedback").wait_for(state="visible", timeout=15_000)
    note = card.locator(".contexts-note").inner_text()
    assert "모델 호출 전 거절" in note and "모델에게 준" not in note
    assert card.locator(".context-open[data-doc-id='tiny-002']").is_visible()
    assert "검색 신뢰도 낮음" in card.locator(".confidence-badge").inner_text()
    assert card.locator(".support-badge").is_hidden()  # nothing was generated to be supported
    context.close()
    assert not errors, errors


def luminance(css_color: str) -> float:
    """0 (black) .. 1 (white) for an `rgb(r, g, b)` computed colour."""
    r, g, b = (int(v) for v in css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colour_scheme_follows_the_system(browser: Any, server: tuple[str, Store], scheme: str) -> None:
    context, page, errors = open_page(browser, server[0], color_scheme=scheme)
    card = ask(page, "ALD 자기제한 반응")
    colours = page.evaluate(
        """() => ['body', '.panel.active', '.answer-text', '.tab.active', '#question'].map((s) => {
             const style = getComputedStyle(document.querySelector(s));
             return [style.backgroundColor, style.color];
           })"""
    )
    backgrounds = [luminance(bg) for bg, _ in colours if not bg.endswith(", 0)")]  # skip transparent
    inks = [luminance(ink) for _, ink in colours]
    if scheme == "dark":
        assert max(backgrounds) < 0.25 and min(inks) > 0.6, colours
    else:
        assert min(backgrounds) > 0.85 and max(inks) < 0.35, colours
    assert card.locator(".confidence-badge").is_visible()
    context.close()
    assert not errors, errors


MAIN_CONTROLS = ["#model-select", "#use-retrieval", "#context-only", "#tab-chat", "#tab-history", "#tab-admin",
                 "#question", "#ask-button", "#new-chat"]


def assert_fits(page: Any, width: int, selectors: list[str]) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not shown"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (selector, box)


def test_phone_width_has_no_horizontal_scroll(browser: Any, server: tuple[str, Store]) -> None:
    context, page, errors = open_page(browser, server[0], viewport={"width": 390, "height": 844})
    assert_fits(page, 390, MAIN_CONTROLS)
    card = ask(page, "퍼지 단계의 역할")
    assert_fits(page, 390, [".answer-card", ".citation", ".regenerate", ".fb-dislike"])
    card.locator(".fb-dislike").click()
    assert_fits(page, 390, [".fb-correction", ".fb-submit"])
    page.click("#tab-admin")
    page.fill("#admin-token", TOKEN)
    page.click("#admin-connect")
    page.wait_for_selector(".kb-open[data-doc-id='tiny-001']")
    assert_fits(page, 390, ["#kb-search", "#kb-upload", "#kb-list", "#kb-text", "#kb-save", "#review-status"])
    context.close()
    assert not errors, errors


def test_uploaded_document_is_indexed_then_retrieved(page: Any, server: tuple[str, Store]) -> None:
    from playwright.sync_api import expect

    page.click("#tab-admin")
    page.fill("#admin-token", TOKEN)
    page.fill("#admin-actor", KOREAN_ADMIN)
    page.click("#admin-connect")
    page.wait_for_selector(".kb-open[data-doc-id='tiny-001']")
    note = "# ZX900 드라이 펌프\n\nZX900 드라이 펌프의 배기 압력은 매주 점검표에 기록한다.\n"
    page.set_input_files("#kb-upload", files=[{"name": "펌프 점검.md", "mimeType": "text/markdown", "buffer": note.encode()}])
    expect(page.locator("#kb-upload-status")).to_contain_text("추가 1개", timeout=10_000)
    expect(page.locator("#kb-index-status")).to_contain_text("색인 완료 — 이제 검색됩니다", timeout=15_000)
    added = page.locator(".kb-open", has_text="ZX900 드라이 펌프")
    assert added.count() == 1
    doc_id = added.get_attribute("data-doc-id")
    assert server[1].list_kb_edits(doc_id=doc_id)[0]["actor"] == KOREAN_ADMIN
    # The same file again adds nothing and says so.
    page.set_input_files("#kb-upload", files=[{"name": "펌프 점검.md", "mimeType": "text/markdown", "buffer": note.encode()}])
    expect(page.locator("#kb-upload-status")).to_contain_text("이미 있음 1개", timeout=10_000)
    page.click("#tab-chat")
    card = ask(page, "ZX900 드라이 펌프 배기 압력")
    assert card.locator(f".context-open[data-doc-id='{doc_id}']").is_visible()
    assert "매주 점검표에 기록한다" in card.locator(".answer-text").inner_text()


SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/screenshots with `ALDLAB_SCREENSHOTS=1` (commit the pictures), else a temp dir."""
    target = SCREENSHOT_DIR if os.environ.get("ALDLAB_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


class PictureAssistant(FakeAssistant):
    """The fake without the "(model)" marker it appends for the model-switch test."""

    def run(self, plan: Plan, **kwargs: Any) -> Iterator[Any]:
        marker = f" ({plan.options.model})"
        for item in super().run(plan, **kwargs):
            if isinstance(item, str):
                if item != marker:
                    yield item
            else:
                item.text = item.text.removesuffix(marker)
                yield item


def test_chat_page_screenshot(browser: Any, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """The README's picture of the chat page, taken by this browser.

    `ALDLAB_SCREENSHOTS=1` writes docs/screenshots/chat.png (commit it when the page
    changes); otherwise the picture goes to a temp dir, so the test still checks it is made.
    """
    target = screenshot_dir(tmp_path)
    root = tmp_path_factory.mktemp("browser-picture")
    kb = write_tiny_kb(root / "kb")
    app = create_app(PictureAssistant(kb), Store(root / "s.sqlite3"), ServeSettings(kb=str(kb)))
    with serve_in_thread(app) as url:
        context, page, errors = open_page(browser, url, viewport={"width": 1280, "height": 1000})
        ask(page, "퍼지 단계의 역할은 무엇인가요?")
        ask(page, "TMA 전구체는 무엇인가요?")
        page.locator("#question").fill("ALD 사이클 한 번에 얼마나 쌓이나요?")
        path = target / "chat.png"
        page.screenshot(path=str(path))
        context.close()
    assert not errors, errors
    assert 10_000 < path.stat().st_size < 300_000


# ---------------------------------------------------------------- issue 25: one language at a time

HANGUL = re.compile("[\uac00-\ud7a3]")


def visible_labels(page: Any) -> str:
    """The page's visible text without the language switch's own "한국어"."""
    return page.locator("body").inner_text().replace("한국어", "")


def test_labels_switch_to_english_and_stay_after_reload(browser: Any, server: tuple[str, Store]) -> None:
    from playwright.sync_api import expect

    context, page, errors = open_page(browser, server[0])
    assert page.get_attribute("html", "lang") == "ko" and page.locator("#tab-chat").inner_text() == "채팅"
    assert "Chat" not in visible_labels(page)
    page.click("[data-set-lang='en']")
    assert page.get_attribute("html", "lang") == "en"
    assert page.get_attribute("[data-set-lang='en']", "aria-pressed") == "true"
    assert not HANGUL.search(visible_labels(page)), visible_labels(page)
    assert page.locator("#tab-chat").inner_text() == "Chat" and page.locator("#ask-button").inner_text() == "Ask"
    assert not HANGUL.search(page.get_attribute("#question", "placeholder"))
    assert page.title() == "aldlab — ALD expert assistant"
    card = ask(page, "TMA 전구체는 무엇인가요?")
    assert card.locator(".confidence-badge").inner_text().startswith("retrieval confidence")
    assert card.locator(".fb-like").inner_text() == "👍 Like"
    # Answers are data, not labels: still Korean (the module's server may hold an edited tiny-003).
    assert HANGUL.search(card.locator(".answer-text").inner_text())
    page.reload()
    page.wait_for_selector("#model-select option", state="attached")
    assert page.get_attribute("html", "lang") == "en" and page.locator("#tab-admin").inner_text() == "KB admin"
    assert not HANGUL.search(visible_labels(page))
    page.click("[data-set-lang='ko']")  # and back, for the record
    expect(page.locator("#tab-chat")).to_have_text("채팅")
    assert page.get_attribute("html", "lang") == "ko"
    context.close()
    assert not errors, errors


def test_an_english_browser_starts_in_english(browser: Any, server: tuple[str, Store]) -> None:
    context, page, errors = open_page(browser, server[0], locale="en-US")
    assert page.get_attribute("html", "lang") == "en" and page.locator("#tab-history").inner_text() == "History"
    context.close()
    assert not errors, errors


# ---------------------------------------------------------------- issue 23: improve now


class HeldRunner:
    """Stands in for `aldlab improve`: "runs" until the test releases it, then registers and
    promotes a model trained on every approved item, as a passing run does (no training)."""

    def __init__(self, adapter_dir: Path) -> None:
        self.adapter_dir = adapter_dir
        self.release = threading.Event()
        self.runs = 0

    def __call__(self, request: ImproveRequest) -> ImproveResult:
        from aldlab.store.registry import ModelRegistry

        self.runs += 1
        self.release.wait(30)
        self.adapter_dir.mkdir(parents=True, exist_ok=True)
        (self.adapter_dir / "adapter_model.safetensors").write_bytes(b"stand-in weights")
        trained_on = [r["feedback_id"] for r in Store(request.db).iter_feedback_rows(status="approved")]
        registry = ModelRegistry()
        record = registry.register(self.adapter_dir, base_model="tiny", created_by=request.actor, feedback_ids=trained_on)
        registry.promote(record.id, request.actor)
        return ImproveResult("promoted", record.id)


def rated(store: Store, question: str, correction: str, *, version: str) -> int:
    answer_id = store.log_answer(question=question, answer="틀린 답", model="ald-ft", model_version=version)
    return store.add_feedback(answer_id, "dislike", correction=correction)


def test_admin_improves_once_enough_feedback_is_approved(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    root = tmp_path_factory.mktemp("browser-improve")
    kb = write_tiny_kb(root / "kb")
    store = Store(root / "s.sqlite3")
    first = rated(store, "TMA 캐니스터를 가열해야 해?", "TMA는 증기압이 높아 가열하지 않습니다.", version="v0003")
    store.review_feedback(first, "approved", "kim", revision=1)
    second = rated(store, "퍼지 시간은 얼마나?", "퍼지는 전구체가 남지 않을 만큼 충분히 길게 합니다.", version="v0003")
    runner = HeldRunner(root / "adapter")
    settings = ServeSettings(kb=str(kb), admin_token=TOKEN, improve_min_items=2)
    with serve_in_thread(create_app(FakeAssistant(kb), store, settings, improve_runner=runner)) as url:
        context, page, errors = open_page(browser, url, viewport={"width": 1280, "height": 1000})
        page.click("#tab-admin")
        page.fill("#admin-token", TOKEN)
        page.fill("#admin-actor", KOREAN_ADMIN)
        page.click("#admin-connect")
        item = page.locator(f".review-item[data-feedback-id='{second}']")
        expect(item.locator(".model-version")).to_have_text("모델 버전 v0003")  # which model answered
        expect(page.locator("#improve-waiting")).to_contain_text("1개 (개선에 2개 필요)")
        assert page.locator("#improve-start").is_hidden()  # one approved item: not enough
        item.locator(".review-approve").click()
        button = page.locator("#improve-start")
        expect(button).to_be_visible()
        assert button.inner_text() == "지금 개선"
        button.click()
        status = page.locator("#improve-status")
        expect(status).to_contain_text("개선 실행 중")
        assert button.is_hidden()  # no second start while it runs (the API says 409 too)
        runner.release.set()
        expect(status).to_contain_text("승격됨: v0001", timeout=10_000)
        assert runner.runs == 1
        # Both items are in the promoted model now: nothing waits, no button.
        expect(page.locator("#improve-waiting")).to_contain_text("0개 (개선에 2개 필요) · 서비스 중인 모델: v0001")
        assert button.is_hidden()
        page.select_option("#review-status", "approved")
        expect(page.locator(".review-item .model-version").first).to_have_text("모델 버전 v0003")
        path = screenshot_dir(tmp_path) / "admin.png"
        page.locator("#review").screenshot(path=str(path))
        context.close()
    assert not errors, errors
    assert 10_000 < path.stat().st_size < 400_000


def test_eval_report_screenshot(browser: Any, report: dict[str, Any], tmp_path: Path) -> None:
    """The README's picture of report.html (the one tests/test_eval_report.py builds)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_content(report["page"], wait_until="load")
    path = screenshot_dir(tmp_path) / "report.png"
    page.screenshot(path=str(path))
    page.close()
    assert 10_000 < path.stat().st_size < 400_000
