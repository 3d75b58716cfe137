"""Walk the chat in a headless Chromium and write a screenshot of each step.

    python -m rag.screenshots docs/screenshots [--model hashing] [--chromium /usr/bin/chromium]

The walk: ask → follow-up → reload → history → upload with progress → ask about it → remove with
confirmation. It runs on a copy of seeds/ indexed in a temporary folder (nothing of the repository's
index is touched). tests/test_browser_walk.py runs the same walk, its screenshots in a temporary
folder. At each step every visible text (and aria-label, title, placeholder) is checked for English.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
TIMEOUT = 60_000  # ms
QUESTION = "Tỷ lệ hộ nghèo Huế 2023?"
FOLLOW_UP = "Còn năm 2022 thì sao?"
UPLOAD_NAME = "bao cao nuoi ong Quang Tri.txt"
UPLOAD_QUESTION = "Số hộ nuôi ong ở Quảng Trị năm 2023 là bao nhiêu?"
UPLOAD_ANSWER = "321 hộ"

# ---------------------------------------------------------------- no English on the page

# words that are not Vietnamese but belong here: names, formats, units
ALLOWED_WORDS = frozenset("""api http docs bm25 markdown json pdf docx txt md html htm mb kb ms sjc ubnd hđnd xklđ
lđ tbxh tp nq cp tw ct qđ gradio rag id""".split())
# English that must never show, even inside a Vietnamese sentence
ENGLISH = frozenset("""the and or of to here file files drop click upload uploading message messages processing
copy copied clear error warning loading close empty value select submit retry undo cancel like dislike
chatbot conversation textbox dropdown download remove settings queue built with scroll down feedback
waiting lost connection invalid type only allowed could not be read stream ended unexpectedly mode lexical
dense extractive generative bot user's bot's""".split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# a Vietnamese syllable written without its marks ("An Giang", "Trang sau", "Xong"): English words rarely fit
_SYLLABLE = re.compile(r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?[aeiouy]{1,3}(?:ng|nh|ch|[cmnpt])?")


def vietnamese_letter(ch: str) -> bool:
    """A letter with a diacritic (tone or vowel mark), or đ: only Vietnamese writes them here."""
    return ch in "đĐ" or (ch.isalpha() and len(unicodedata.normalize("NFD", ch)) > 1)


def not_vietnamese(text: str, allowed_texts: frozenset[str] = frozenset()) -> bool:
    """True when `text` shows English: an English word, or ASCII words none of which is allowed
    in a text without any Vietnamese letter."""
    text = text.strip()
    if not text or text in allowed_texts:
        return False
    tokens = [t for t in text.split() if not any(ch.isdigit() or ch == "_" for ch in t)]  # ids, numbers
    words = [w.lower() for t in tokens for w in _WORD.findall(t)]
    if any(w in ENGLISH for w in words):
        return True
    if any(vietnamese_letter(ch) for ch in text):
        return False
    return any(w.isascii() and w not in ALLOWED_WORDS and not _SYLLABLE.fullmatch(w) for w in words)


VISIBLE_TEXTS_JS = """() => {
  const out = [];
  const shown = el => { if (!el) return false; const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const t = n.nodeValue.trim(), el = n.parentElement;
    if (t && el && !el.closest('script,style,template') && shown(el)) out.push(t);
  }
  for (const el of document.querySelectorAll('[aria-label],[title],[placeholder]')) {
    if (!shown(el) && !el.closest('[role=log]')) continue;
    for (const a of ['aria-label', 'title', 'placeholder']) {
      const v = el.getAttribute(a); if (v && v.trim()) out.push(v.trim());
    }
  }
  return [...new Set(out)];
}"""


def english_on(page, allowed_texts: frozenset[str] = frozenset()) -> list[str]:
    """The visible texts and labels of the page that show English."""
    return [t for t in page.evaluate(VISIBLE_TEXTS_JS) if not_vietnamese(t, allowed_texts)]


# ---------------------------------------------------------------- the walk


@dataclass
class WalkReport:
    shots: list[Path] = field(default_factory=list)
    english: dict[str, list[str]] = field(default_factory=dict)  # step → English texts seen
    progress: list[str] = field(default_factory=list)  # the upload's statuses, in order
    answers: dict[str, str] = field(default_factory=dict)  # step → the short answer shown
    aria_labels: list[str] = field(default_factory=list)  # of the chat's messages


def upload_document(paragraphs: int = 60) -> str:
    """A report of many paragraphs (so that embedding takes a while and shows n/N); one sentence holds the answer."""
    lines = ["Báo cáo tình hình nuôi ong tỉnh Quảng Trị năm 2023", ""]
    districts = ["Hướng Hóa", "Đakrông", "Cam Lộ", "Gio Linh", "Vĩnh Linh", "Triệu Phong", "Hải Lăng"]
    for i in range(paragraphs):
        d = districts[i % len(districts)]
        lines.append(f"Tại huyện {d}, đợt khảo sát thứ {i + 1} ghi nhận {40 + i} tổ hợp tác trồng rừng, "
                     f"{120 + 3 * i} ha keo lai và {15 + i % 9} mô hình trồng cây dược liệu dưới tán rừng; "
                     "người dân được tập huấn kỹ thuật chăm sóc và phòng chống cháy rừng trong mùa khô.")
        if i == paragraphs // 2:
            lines.append("Số hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ, tăng 25 hộ so với năm 2022.")
    return "\n".join(lines) + "\n"


def _answers(page) -> int:
    return page.locator("#rag-chat .rag-answer:not(.rag-streaming)").count()


def _ask(page, question: str) -> str:
    before = _answers(page)
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#rag-chat .rag-answer:not(.rag-streaming)').length > n",
        arg=before, timeout=TIMEOUT)
    last = page.locator("#rag-chat .rag-answer:not(.rag-streaming)").last
    short = last.locator(".rag-short")
    return short.inner_text() if short.count() else last.inner_text()


def _choose(page, dropdown: str, label_part: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option").filter(has_text=label_part).first.click()


def walk(page, base_url: str, shoot: Callable[[str], Path], upload_file: Path) -> WalkReport:
    """Walk the chat at `base_url` in `page`; `shoot(name)` saves a screenshot. Returns what was seen."""
    report = WalkReport()
    allowed = frozenset({"ty le ho ngheo hue 2023", upload_file.name, upload_file.stem})

    def step(name: str) -> None:
        time.sleep(0.4)  # the page's script relabels and translates on the next frames
        report.english[name] = english_on(page, allowed)
        report.shots.append(shoot(name))

    page.goto(base_url + "/", wait_until="domcontentloaded")
    page.locator("#rag-question textarea").wait_for(timeout=TIMEOUT)
    page.wait_for_function("() => !document.body.innerText.includes('Drop File Here')", timeout=TIMEOUT)

    report.answers["ask"] = _ask(page, QUESTION)
    step("01-hoi")
    report.answers["follow-up"] = _ask(page, FOLLOW_UP)
    report.aria_labels = page.evaluate(
        "() => [...document.querySelectorAll('#rag-chat [aria-label]')].map(e => e.getAttribute('aria-label'))")
    step("02-hoi-tiep")

    page.reload(wait_until="domcontentloaded")
    page.locator("#rag-question textarea").wait_for(timeout=TIMEOUT)
    page.wait_for_function("() => !document.body.innerText.includes('Drop File Here')", timeout=TIMEOUT)
    page.locator("#rag-history-choice input").click()
    page.get_by_role("option").filter(has_text=QUESTION[:20]).first.wait_for(timeout=TIMEOUT)
    step("03-tai-lai-trang")
    page.get_by_role("option").filter(has_text=QUESTION[:20]).first.click()
    page.locator("#rag-history-open").click()
    page.wait_for_function("() => document.querySelectorAll('#rag-chat .rag-answer').length >= 2", timeout=TIMEOUT)
    step("04-mo-lich-su")

    page.evaluate("""() => { window.__ragProgress = [];
        const box = document.querySelector('#rag-upload-status');
        new MutationObserver(() => { const t = box.innerText.trim(); const l = window.__ragProgress;
          if (t && l[l.length - 1] !== t) l.push(t); }).observe(box, {subtree: true, childList: true, characterData: true}); }""")
    page.locator("#rag-upload input[type=file]").set_input_files(str(upload_file))
    try:
        page.locator("#rag-upload-status .rag-job:not(.rag-ok):not(.rag-error)").wait_for(timeout=TIMEOUT)
        page.wait_for_function("() => /đang nhúng \\d+\\/\\d+/.test(document.querySelector('#rag-upload-status').innerText)"
                               " || document.querySelector('#rag-upload-status .rag-ok')", timeout=TIMEOUT)
        step("05-dang-tai-len")
    except Exception:  # indexed before the page could show a step (a fast embedder): no picture of it
        pass
    page.locator("#rag-upload-status .rag-ok").wait_for(timeout=TIMEOUT * 3)
    report.progress = page.evaluate("() => window.__ragProgress")
    step("06-tai-len-xong")

    report.answers["uploaded"] = _ask(page, UPLOAD_QUESTION)
    step("07-hoi-tai-lieu-moi")

    _choose(page, "#rag-remove-choice", upload_file.stem)
    page.locator("#rag-remove").click()
    page.locator("#rag-remove-confirm").wait_for(state="visible", timeout=TIMEOUT)
    step("08-xac-nhan-xoa")
    page.locator("#rag-remove-confirm").click()
    page.get_by_text(f"Đã xóa {upload_file.stem}").wait_for(timeout=TIMEOUT)
    step("09-da-xoa")
    return report


def serve_and_walk(out_dir: Path, model: str | None = None, chromium: Path = CHROMIUM,
                   work_dir: Path | None = None) -> WalkReport:
    """Index a copy of seeds/ with `model`, serve the app, walk it in Chromium, screenshots to `out_dir`."""
    from playwright.sync_api import sync_playwright

    from .api import RAG
    from .server import BackgroundServer, create_app

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rag-walk-", dir=work_dir) as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "seeds", root / "seeds")
        rag, _ = RAG.build([root / "seeds"], root / "index", model=model, llm=False)
        upload = root / "upload" / UPLOAD_NAME
        upload.parent.mkdir()
        upload.write_text(upload_document(), encoding="utf-8")

        def shoot(page):
            def save(name: str) -> Path:
                path = out_dir / f"{name}.png"
                page.screenshot(path=str(path), full_page=True)
                return path
            return save

        with BackgroundServer(create_app(rag=rag, token="")) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="vi-VN")
                page = context.new_page()
                return walk(page, url, shoot(page), upload)
            finally:
                browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=ROOT / "docs" / "screenshots")
    parser.add_argument("--model", default=None, help="embedding model of the walk's index (default: the default model, 'hashing' for a fast stand-in)")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM)
    args = parser.parse_args(argv)
    if not args.chromium.exists():
        print(f"{args.chromium} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = serve_and_walk(args.out_dir, args.model, args.chromium)
    for shot in report.shots:
        print(shot)
    print(f"answers: {report.answers}")
    print(f"upload statuses: {report.progress}")
    english = {k: v for k, v in report.english.items() if v}
    print(f"English on the page: {english or 'none'} ({time.perf_counter() - t0:.0f} s)")
    return 1 if english else 0


if __name__ == "__main__":
    sys.exit(main())
