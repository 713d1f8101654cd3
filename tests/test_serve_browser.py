"""Browser tests: Playwright drives Debian's chromium against the real web UI.

No browser download: `.ci/run` installs the `chromium` Debian package
(scripts/install_browser.sh); without /usr/bin/chromium these tests are skipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aldlab.kb.schema import Document
from aldlab.serve.app import create_app
from aldlab.serve.fake import FakeAssistant
from aldlab.serve.settings import ServeSettings
from aldlab.serve.testing import TINY_DOCUMENTS, serve_in_thread, write_tiny_kb
from aldlab.store import Store

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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run scripts/install_browser.sh"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    root = tmp_path_factory.mktemp("browser")
    evil = Document(id="xss-001", title='<b onmouseover="window.__xss=3">굵게</b>', text=XSS_TEXT, keywords=[], topic="basics")
    kb = write_tiny_kb(root / "kb", [*TINY_DOCUMENTS, evil])
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
    context = browser.new_context()
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
    assert "신뢰도" in badge.inner_text() and badge.get_attribute("title")
    assert card.locator(".confidence-explanation").inner_text()
    card.locator(".citation[data-doc-id='tiny-003']").click()
    dialog = page.locator("#doc-dialog")
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
    page.fill("#admin-actor", "browser-kim")
    page.click("#admin-connect")
    page.wait_for_selector(".kb-open[data-doc-id='tiny-001']")
    assert page.locator("#kb-list b").count() == 0  # the HTML title is text here too
    page.click("#kb-new")
    page.fill("#kb-id", "tiny-200")
    page.fill("#kb-title", "웹에서 추가한 문서")
    page.fill("#kb-topic", "basics")
    page.fill("#kb-text", "브라우저 관리자 탭에서 추가한 ALD 문서 본문.")
    page.click("#kb-save")
    page.wait_for_selector(".kb-open[data-doc-id='tiny-200']")
    edits = server[1].list_kb_edits(doc_id="tiny-200")
    assert edits[0]["action"] == "add" and edits[0]["actor"] == "browser-kim"


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
    page = browser.new_page()
    page.goto(slow_server + "/")
    page.wait_for_selector("#model-select option[value='base']", state="attached")
    assert page.locator("#base-warning").is_visible()  # base model only: the user is told
    page.fill("#question", "퍼지 단계의 역할은?")
    page.click("#ask-button")
    card = page.locator(".answer-card").last
    # within a second, long before the 2.5 s "generation" ends: status and contexts
    card.locator(".context-open[data-doc-id='tiny-002']").wait_for(state="visible", timeout=1500)
    status = card.locator(".status-line")
    assert status.is_visible() and "generating" in status.inner_text()
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
    page.fill("#admin-actor", "reviewer-park")
    page.click("#admin-connect")
    item = page.locator(f".review-item[data-feedback-id='{feedback_id}']")
    item.wait_for(state="visible")
    assert "TMA 전구체 반응" in item.inner_text() and "Al2O3를 만든다" in item.inner_text()
    item.locator(".review-approve").click()
    item.wait_for(state="detached")
    row = next(r for r in server[1].iter_feedback_rows(status="approved") if r["feedback_id"] == feedback_id)
    assert row["review"]["reviewer"] == "reviewer-park"
