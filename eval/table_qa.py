"""Questions on the cells of a table-only report: answered, and cited to the row?

The report (eval/table_report.json: a title, one sentence without figures, "Biểu 1" with 12 rows ×
3 columns of figures) is built as a DOCX, a PDF (the table on page 2) and an .xlsx, each indexed on
its own; every question of eval/table_qa.jsonl is asked of each. A question counts when the short
answer is the expected value (spaces and a trailing ".0" aside) AND the citation is the row (its
text starts with the row's label) AND, for the PDF, the citation gives the page the row is printed on
(the table starts on page 2 and runs onto page 3; pdfium's text says which row is where).

    python eval/table_qa.py [--model none|DEFAULT] [--formats docx,pdf,xlsx] [--questions FILE] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

import make_docs  # noqa: E402


def build(report: dict, kind: str) -> bytes:
    rows = [report["header"], *report["rows"]]
    if kind == "docx":
        return make_docs.table_docx(rows, before=f"{report['title']}\n{report['intro']}", caption=report["caption"],
                                    after=report["after"])
    if kind == "pdf":
        return make_docs.table_pdf(rows, before=f"{report['title']}\n{report['intro']}", caption=report["caption"],
                                   after=report["after"], pages_before=1)
    if kind == "xlsx":
        def number(text: str):
            value = text.replace(".", "").replace(",", ".")
            return float(value) if "." in value else int(value)

        body = [row[:3] + [number(v) for v in row[3:]] for row in report["rows"]]
        return make_docs.table_xlsx({"Biểu 1": [report["header"], *body]}, title=report["title"])
    raise ValueError(kind)


def pdf_pages(path: Path, report: dict) -> dict[str, int]:
    """The page each row label is printed on, read by pdfium (the truth the citations are checked against)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    texts = [unicodedata.normalize("NFC", pdf[i].get_textpage().get_text_range()) for i in range(len(pdf))]
    return {row[1]: next((i + 1 for i, t in enumerate(texts) if row[1] in " ".join(t.split())), 0)
            for row in report["rows"]}


def norm(value: str | None) -> str:
    text = unicodedata.normalize("NFC", value or "").lower().replace(" ", "")
    return text.replace(",0%", "%").replace(",0", "") if text.endswith((",0%", ",0")) else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="none", help="embedding model ('none': BM25 only, the default)")
    parser.add_argument("--formats", default="docx,pdf,xlsx")
    parser.add_argument("--questions", default=str(HERE / "table_qa.jsonl"),
                        help="the question set (eval/table_qa_heldout.jsonl: 10 written after the answerer's table rules)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    from rag.api import RAG

    report = json.loads((HERE / "table_report.json").read_text("utf-8"))
    questions = [json.loads(line) for line in Path(args.questions).read_text("utf-8").splitlines() if line.strip()]
    totals = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.formats.split(","):
            folder = Path(tmp) / kind
            folder.mkdir()
            (folder / f"bao-cao-quang-tri-2023.{kind}").write_bytes(build(report, kind))
            t0 = time.perf_counter()
            rag, _ = RAG.build([folder], Path(tmp) / f"index-{kind}", model=None if args.model == "DEFAULT" else args.model,
                               llm=False)
            index_s = time.perf_counter() - t0
            pages = pdf_pages(folder / f"bao-cao-quang-tri-2023.{kind}", report) if kind == "pdf" else {}
            good = 0
            for q in questions:
                answer = rag.ask(q["question"])
                cite = answer.citations[0] if answer.citations else None
                value_ok = norm(answer.answer) == norm(q["answer"])
                row_ok = cite is not None and cite.text.startswith(q["row"] + " |")
                page_ok = kind != "pdf" or (cite is not None and cite.page == pages.get(q["row"]))
                good += value_ok and row_ok and page_ok
                if args.verbose or not (value_ok and row_ok and page_ok):
                    mark = "ok " if value_ok and row_ok and page_ok else "BAD"
                    print(f"  {mark} [{kind}] {q['id']} {q['question']!r}: {answer.answer!r} (want {q['answer']!r})"
                          f"{'' if row_ok else ' wrong row: ' + repr(cite.text[:60] if cite else None)}"
                          f"{'' if page_ok else f' page {cite.page if cite else None}'}")
            totals[kind] = good
            print(f"{kind}: {good}/{len(questions)} answered and cited to the row ({good / len(questions):.0%}); "
                  f"indexed in {index_s:.1f} s")
    overall = sum(totals.values()) / (len(questions) * len(totals))
    print(f"all formats: {overall:.1%} of {len(questions)} questions × {len(totals)} formats (target ≥ 90%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
