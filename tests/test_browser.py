"""The chat in a real headless Chromium (Debian's package, driven by Playwright).

Screenshots go to $TMPDIR/rag-screenshots (docs/screenshots/ with RAG_UPDATE_SCREENSHOTS=1). Without /usr/bin/chromium the tests are skipped, except in CI
(CI=true), where they fail: install it with `apt-get install chromium` (scripts/test.sh does).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag.screenshots import ARGS, CHROMIUM  # one headless Chromium set-up for every browser test
from rag.api import RAG
from rag.server import BackgroundServer, create_app

ROOT = Path(__file__).resolve().parents[1]
# the README's screenshots are refreshed only on request: a test run must not modify tracked files
SHOTS = ROOT / "docs" / "screenshots" if os.environ.get("RAG_UPDATE_SCREENSHOTS") == "1" else Path(
    os.environ.get("TMPDIR", "/tmp")) / "rag-screenshots"
HUE_DOC = "004_1400c37e89a2c6fc"
EVIL_NAME = "tai lieu doc hai.txt"
EVIL_TEXT = (
    'Tài liệu thử <script>window.__pwned=1</script> về nuôi ong.\n'
    'Số hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ <script>window.__pwned=1</script> '
    '<img src=x onerror="window.__pwned=1"> theo báo cáo.\n'
)
TIMEOUT = 30_000  # ms


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " — required in CI")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    _chromium_or_skip()
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "seeds", root / "seeds")
    rag, _ = RAG.build([root / "seeds"], root / "index", model="none")
    with BackgroundServer(create_app(rag=rag, token="")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, locale="vi-VN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/", wait_until="domcontentloaded")
    page.locator("#rag-question textarea").wait_for(timeout=TIMEOUT)
    page.errors = errors
    yield page
    context.close()


def _ask(page, question: str) -> None:
    before = page.locator("#rag-chat .rag-answer:not(.rag-streaming)").count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#rag-chat .rag-answer:not(.rag-streaming)').length > n",
        arg=before, timeout=TIMEOUT,
    )


def _last_answer(page):
    return page.locator("#rag-chat .rag-answer:not(.rag-streaming)").last


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def test_canonical_question_shows_answer_and_source(page):
    _ask(page, "Tỷ lệ hộ nghèo Huế 2023?")
    answer = _last_answer(page)
    assert "2,27%" in answer.locator(".rag-short").inner_text()
    source = answer.locator(".rag-source").first
    assert HUE_DOC in source.inner_text()
    assert source.locator(".rag-quote mark").inner_text() == "2,27%"
    _shot(page, "chat_answer.png")
    source.locator("details.rag-doc summary").click()
    cited = source.locator("details.rag-doc mark.rag-cite")
    cited.wait_for(state="visible", timeout=TIMEOUT)
    assert "2,27%" in cited.inner_text()
    page.wait_for_function(  # opened at the cited place: the span is scrolled into the text box
        "() => { const d = document.querySelector('#rag-chat details.rag-doc[open]');"
        " const box = d.querySelector('.rag-doc-text'), m = d.querySelector('mark.rag-cite');"
        " const b = box.getBoundingClientRect(), r = m.getBoundingClientRect();"
        " return box.scrollTop > 0 && r.top >= b.top && r.top < b.bottom; }", timeout=TIMEOUT)
    assert f"/api/documents/{HUE_DOC}/text?start=" in source.locator("a").get_attribute("href")
    assert "chế độ từ khóa" in page.locator("#rag-mode").inner_text()
    assert "Tỷ lệ hộ nghèo Huế 2023?" in page.locator("#rag-chat").inner_text()  # the question stays in the history
    assert not page.errors


def test_examples_history_and_abstention(page):
    page.get_by_role("button", name="XKLĐ Nghệ An 2023").click()
    page.wait_for_function("document.querySelectorAll('#rag-chat .rag-answer:not(.rag-streaming)').length >= 1",
                           timeout=TIMEOUT)
    assert "Nghệ An" in page.locator("#rag-chat").inner_text() or _last_answer(page).locator(".rag-source").count()
    page.get_by_role("button", name="Giá vàng SJC hôm nay?").click()
    page.wait_for_function("document.querySelectorAll('#rag-chat .rag-answer:not(.rag-streaming)').length >= 2",
                           timeout=TIMEOUT)
    last = _last_answer(page)
    assert "Không tìm thấy" in last.inner_text() and last.locator(".rag-abstain").count() == 1
    assert page.locator("#rag-chat .rag-answer:not(.rag-streaming)").count() == 2  # the history is kept


def test_uploaded_markup_is_shown_escaped_and_never_runs(page, tmp_path):
    evil = tmp_path / EVIL_NAME
    evil.write_text(EVIL_TEXT, encoding="utf-8")
    page.locator("#rag-upload input[type=file]").set_input_files(str(evil))
    page.get_by_text("Đã thêm tai lieu doc hai").wait_for(timeout=TIMEOUT)
    assert "tai lieu doc hai" in page.locator("#rag-docs").inner_text()

    _ask(page, 'Số hộ nuôi ong ở Quảng Trị năm 2023? <img src=x onerror="window.__pwned=1">')
    answer = _last_answer(page)
    assert "321 hộ" in answer.locator(".rag-short").inner_text()
    source = answer.locator(".rag-source").first
    quote = source.locator(".rag-quote").inner_text()
    assert "<script>window.__pwned=1</script>" in quote and '<img src=x onerror="window.__pwned=1">' in quote
    source.locator("details.rag-doc summary").click()
    assert "<script>" in source.locator(".rag-doc-text").inner_text()
    user_text = page.locator("#rag-chat").inner_text()
    assert '<img src=x onerror="window.__pwned=1">' in user_text  # the question, shown as typed
    assert page.locator("#rag-chat script, #rag-chat img[src='x']").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    _shot(page, "escaped_upload.png")

    # the standalone document page escapes too, and its CSP would stop a script anyway
    href = source.locator("a").get_attribute("href")
    doc_page = page.context.new_page()
    doc_page.goto(page.url.rstrip("/") + href, wait_until="domcontentloaded")
    assert "<script>window.__pwned=1</script>" in doc_page.locator("body").inner_text()
    assert doc_page.evaluate("typeof window.__pwned") == "undefined"
    doc_page.close()

    # removal from the UI
    page.locator("#rag-remove-choice input").click()
    page.get_by_role("option", name="tai lieu doc hai").first.click()
    page.locator("#rag-remove").click()
    confirm = page.locator("#rag-remove-confirm")
    confirm.wait_for(state="visible", timeout=TIMEOUT)  # removal asks first
    assert "tai lieu doc hai" in page.locator("#rag-docs").inner_text()
    confirm.click()
    page.get_by_text("Đã xóa tai lieu doc hai").wait_for(timeout=TIMEOUT)
    assert "tai lieu doc hai" not in page.locator("#rag-docs").inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert not page.errors
