"""OCR benchmark: seed 004 printed on A4 and scanned at 300 dpi (image-only PDF).

Prints: the character error rate of the OCR'd body against the seed's text; whether the seed question
"Tỷ lệ hộ nghèo Huế 2023?" is answered 2,27% citing page 1 from the scan; OCR throughput (pages/s,
Tesseract `vie`, RAG_OCR_WORKERS pages at a time); and the time `rag index` takes on a 20-page scanned
report (the seed's pages repeated), OCR, chunking and embedding included.

    python eval/bench_ocr.py [--pages 20] [--model none|DEFAULT] [--skip-index]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

import make_docs  # noqa: E402

SEED = HERE.parent / "seeds" / "004_1400c37e89a2c6fc.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20, help="pages of the scanned report indexed (default 20)")
    parser.add_argument("--model", default="DEFAULT", help="embedding model for the indexing run ('none': BM25 only)")
    parser.add_argument("--skip-index", action="store_true", help="only the CER, the answer and the throughput")
    args = parser.parse_args()
    from rag import ocr
    from rag.api import RAG
    from rag.ingest import load_document

    reason = ocr.missing()
    if reason:
        print(f"OCR is not available: {reason}.")
        return 1
    text = SEED.read_text("utf-8")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"OCR workers {ocr.OCR_WORKERS}, {ocr.DPI} dpi, Tesseract lang {ocr.LANG}")
    rows: list[tuple[str, str, str]] = []

    def show(name: str, value: str, target: str = "") -> None:
        rows.append((name, value, target))
        print(f"{name}: {value}" + (f" (target {target})" if target else ""), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scan"
        folder.mkdir()
        (folder / "004_scan.pdf").write_bytes(make_docs.scanned_pdf(text))
        import resource

        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        doc = load_document(folder / "004_scan.pdf")
        ocr_s = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        tess_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        pages = len(doc.ocr_pages)
        error = make_docs.cer(text, doc.text)
        show("CER, seed 004 body (scanned, 300 dpi)", f"{error:.2%}", "≤ 3%")
        show(f"OCR throughput ({pages} pages, render + Tesseract)", f"{pages / ocr_s:.2f} pages/s "
             f"({ocr_s / pages:.1f} s/page)")
        show("Tesseract CPU time per page (independent of the machine's load)", f"{tess_cpu / pages:.1f} s")
        rag, _ = RAG.build([folder], Path(tmp) / "index-scan", model="none", llm=False)
        answer = rag.ask("Tỷ lệ hộ nghèo Huế 2023?")
        page = answer.citations[0].page if answer.citations else None
        show("'Tỷ lệ hộ nghèo Huế 2023?' from the scan", f"{answer.answer} (page {page})", "2,27% (page 1)")
        if not args.skip_index:
            big = Path(tmp) / "report"
            big.mkdir()
            (big / "bao-cao-scan.pdf").write_bytes(make_docs.scanned_pdf(text, repeat_to=args.pages))
            model = None if args.model == "DEFAULT" else args.model
            t0 = time.perf_counter()
            rag, report = RAG.build([big], Path(tmp) / "index-report", model=model, llm=False)
            index_s = time.perf_counter() - t0
            show(f"rag index, {args.pages}-page scanned report ({rag.mode}, {report.chunks} chunks)",
                 f"{index_s:.1f} s ({args.pages / index_s:.2f} pages/s)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value | target |")
    print(f"|{'-' * (width + 2)}|-------|--------|")
    for name, value, target in rows:
        print(f"| {name.ljust(width)} | {value} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
