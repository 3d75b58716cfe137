"""Read .txt, .md, .html, .pdf, .docx, .doc and .xlsx files into plain text, page by page.

Parsing is left to the libraries that do it well (pypdf, pypdfium2 and pdfplumber, python-docx,
openpyxl, antiword, BeautifulSoup, charset-normalizer, Tesseract for scanned pages); this module
only picks one by suffix and turns their failures into one-sentence errors. Tables become lines
that carry their headers (rag/tables.py). `read_document` keeps the pages apart (PDF pages, a
DOCX's page breaks, a .doc's form feeds) so that citations can give a page.

What a file may expand to is bounded, each bound checked before the work it protects (a 45 KB
.docx of a million empty paragraphs took python-docx 25 s and 370 MB): a .docx's zip directory
and unzipped size (from the directory, before anything is inflated), its XML elements and
paragraphs (counted on the raw bytes, before any XML is parsed), a PDF's pages, the characters of
text, and the seconds spent. Past a bound: TooLarge, one sentence saying which.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import TooLarge, UsageError

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".doc", ".xlsx")
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024  # a .docx's parts together, uncompressed
MAX_ZIP_DIRECTORY_BYTES = 1024 * 1024  # a .docx's zip directory (~10k parts; Word writes ~20)
MAX_XML_ELEMENTS = 1_000_000  # in a .docx's parts (python-docx's tree: ~130 bytes each)
MAX_PARAGRAPHS = 100_000  # in a .docx (~3,000 pages; python-docx reads ~40k a second)
MAX_PDF_PAGES = 2_000
MAX_TEXT_CHARS = 50_000_000  # what any file may give: as much as the largest text file
MAX_READ_SECONDS = 60  # reading one file (OCR has its own bounds: rag/ocr.py)
MIN_TABLE_PATHS = 4  # a PDF page with fewer drawn lines and boxes than this has no ruled table to look for


@dataclass(frozen=True)
class Extracted:
    """What a file holds: its text page by page (one "page" for formats without pages)."""

    pages: tuple[str, ...]
    paged: bool = False  # the pages are real pages (PDF, DOCX or .doc with page breaks)
    ocr_pages: tuple[int, ...] = ()  # the pages (1-based) read by OCR

    @property
    def text(self) -> str:
        return "\n\n".join(self.pages)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Supported files under the given files and folders, sorted, hidden files skipped."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.suffix.lower() in SUPPORTED:
                    yield child
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED:
                raise UsageError(
                    f"{path} is not a supported document type (use {', '.join(SUPPORTED)})."
                )
            yield path
        else:
            raise UsageError(f"{path} does not exist.")


def read_text(path: Path, data: bytes | None = None) -> str:
    """The text of a supported file; raises UsageError when it cannot be read."""
    return read_document(path, data).text


def read_document(path: Path, data: bytes | None = None, progress: bool = False) -> Extracted:
    """The text of a supported file, page by page; raises UsageError when it cannot be read.
    `progress`: show the OCR's progress on stderr."""
    data = path.read_bytes() if data is None else data
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB.")
    suffix = path.suffix.lower()
    budget = _Budget(path.name)
    if suffix in (".txt", ".md", ".markdown"):
        out = Extracted((decode_text(data, path.name),))
    elif suffix in (".html", ".htm"):
        out = Extracted((_html_text(decode_text(data, path.name)),))
    elif suffix == ".pdf":
        out = _pdf_pages(data, path.name, budget, progress)
    elif suffix == ".docx":
        out = _docx_pages(data, path.name, budget)
    elif suffix == ".doc":
        out = _doc_pages(data, path.name, budget)
    elif suffix == ".xlsx":
        out = Extracted((_xlsx_text(data, path.name, budget),))
    else:
        raise UsageError(f"{path.name} is not a supported document type (use {', '.join(SUPPORTED)}).")
    budget.check(sum(len(p) for p in out.pages))
    return out


class _Budget:
    """The time and the characters of text one file may take; `check` raises TooLarge past either."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.deadline = time.monotonic() + MAX_READ_SECONDS

    def check(self, chars: int = 0) -> None:
        if chars > MAX_TEXT_CHARS:
            raise TooLarge(f"{self.name} holds more than {MAX_TEXT_CHARS:,} characters of text; split it into "
                           "smaller files.")
        if time.monotonic() > self.deadline:
            raise TooLarge(f"{self.name} takes more than {MAX_READ_SECONDS} seconds to read; split it into "
                           "smaller files.")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer detects; binary is refused."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{name} looks like a binary file, not text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise UsageError(f"{name} is not valid UTF-8 and its encoding could not be detected.")
    return str(best)


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "form", "iframe"]):
        tag.decompose()
    blocks = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section", "article", "title",
              "table", "blockquote", "pre", "dt", "dd")
    for tag in soup.find_all(blocks):
        tag.insert_after("\n\n" if tag.name != "br" else "\n")
    for tag in soup.find_all(("td", "th")):
        tag.insert_after(" | ")
    return soup.get_text()


def _pdf_pages(data: bytes, name: str, budget: _Budget, progress: bool = False) -> Extracted:
    """Each page's text layer (pypdf); ruled tables as rows with headers (pdfplumber); pages without
    a text layer read by OCR (rag/ocr.py)."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        count = len(reader.pages)  # (the page tree's /Count: nothing is read yet)
        if count > MAX_PDF_PAGES:
            raise TooLarge(f"{name} has {count:,} pages (at most {MAX_PDF_PAGES:,}); split it into smaller files.")
        pages, chars = [], 0
        for page in reader.pages:
            pages.append(unwrap(page.extract_text() or ""))
            chars += len(pages[-1])
            budget.check(chars)
            if len(pages) > MAX_PDF_PAGES:  # a page tree that lies about its /Count
                raise TooLarge(f"{name} has more than {MAX_PDF_PAGES:,} pages; split it into smaller files.")
    except (PdfReadError, ValueError, KeyError, TypeError, NotImplementedError, AssertionError,
            IndexError, AttributeError, RecursionError, OSError) as exc:
        raise UsageError(f"{name} could not be read as a PDF ({exc}).") from exc
    ocr_done: tuple[int, ...] = ()
    try:
        import pypdfium2 as pdfium
    except ImportError:  # pragma: no cover - a dependency; without it: text layers only
        return Extracted(tuple(pages), paged=True)
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return Extracted(tuple(pages), paged=True)  # pypdf read it: its text stands
    try:
        if len(pdf) != len(pages):
            return Extracted(tuple(pages), paged=True)
        from . import ocr

        scanned, ruled = [], []
        for i in range(len(pages)):
            kinds = _object_kinds(pdf, i)
            if ocr.needs_ocr(pages[i]) and kinds["image"]:
                scanned.append(i)
            elif kinds["path"] >= MIN_TABLE_PATHS:
                ruled.append(i)
            budget.check(chars)
        for i, text in _pdf_tables(data, ruled, name, budget).items():
            pages[i] = text
        if scanned:
            if ocr.missing() and any(not ocr.needs_ocr(p) for p in pages):
                import sys

                print(f"{name}: {len(scanned)} scanned page(s) skipped: OCR is not available ({ocr.missing()}).",
                      file=sys.stderr)
            else:
                show = _ocr_progress(name, len(scanned)) if progress else None
                started = time.monotonic()
                for i, text in ocr.ocr_pages(pdf, scanned, name, show).items():
                    pages[i] = unwrap(text, every_line=True)
                budget.deadline += time.monotonic() - started  # (OCR has its own time limit: rag/ocr.py)
                ocr_done = tuple(i + 1 for i in scanned)
    finally:
        pdf.close()
    return Extracted(tuple(pages), paged=True, ocr_pages=ocr_done)


def unwrap(text: str, every_line: bool = False) -> str:
    """A page's lines joined back into paragraphs: a sentence that wraps at the margin is one line
    again (sentences and citations are found line by line). `every_line`: join all the lines of a
    paragraph (Tesseract leaves a blank line between paragraphs); else join a line to the previous one
    when it starts in lower case and the previous one does not end a sentence.

    >>> unwrap("Tỷ lệ hộ nghèo\\ngiảm còn 2,27%.\\nNăm 2024")
    'Tỷ lệ hộ nghèo giảm còn 2,27%.\\nNăm 2024'
    """
    out = []
    for para in re.split(r"\n[ \t]*\n", text):
        lines = [line.strip() for line in para.split("\n") if line.strip()]
        if every_line:
            out.append(" ".join(lines))
            continue
        joined: list[str] = []
        for line in lines:
            if joined and line[0].islower() and not joined[-1].endswith((".", "!", "?", ":", ";")):
                joined[-1] += " " + line
            else:
                joined.append(line)
        out.append("\n".join(joined))
    return "\n\n".join(p for p in out if p)


def _object_kinds(pdf, index: int) -> dict[str, int]:
    """How many images and drawn paths page `index` holds (pdfium: milliseconds a page)."""
    import pypdfium2.raw as raw

    page = pdf[index]
    try:
        counts = {"image": 0, "path": 0}
        for obj in page.get_objects(max_depth=2):
            if obj.type == raw.FPDF_PAGEOBJ_IMAGE:
                counts["image"] += 1
            elif obj.type == raw.FPDF_PAGEOBJ_PATH:
                counts["path"] += 1
            if counts["path"] >= MIN_TABLE_PATHS and counts["image"]:
                break
        return counts
    finally:
        page.close()


def _pdf_tables(data: bytes, indexes: list[int], name: str, budget: _Budget) -> dict[int, str]:
    """The text of the pages that hold ruled tables, tables as rows with headers, in reading order."""
    if not indexes:
        return {}
    import io

    try:
        import pdfplumber
    except ImportError:  # pragma: no cover - a dependency
        return {}
    out: dict[int, str] = {}
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for i in indexes:
                page = pdf.pages[i]
                tables = page.find_tables()
                if tables:
                    out[i] = _pdf_page_with_tables(page, tables)
                page.close()
                budget.check()
    except TooLarge:
        raise
    except Exception:  # noqa: BLE001 - pdfminer fails in many ways; the text layer read by pypdf stands
        return out
    return out


def _pdf_page_with_tables(page, tables) -> str:
    """Text above, between, beside and below the tables, and each table's rows, top to bottom."""
    from .tables import table_lines

    tables = sorted(tables, key=lambda t: t.bbox[1])
    parts: list[str] = []
    top = page.bbox[1]
    x0, _, x1, bottom = page.bbox
    for table in tables:
        tx0, ttop, tx1, tbottom = table.bbox
        if ttop > top:
            parts.append(page.crop((x0, top, x1, ttop)).extract_text() or "")
        band = page.crop((x0, max(ttop, top), x1, min(tbottom, bottom)))
        beside = band.outside_bbox(table.bbox).extract_text() if max(ttop, top) < min(tbottom, bottom) else ""
        parts.append(beside or "")
        parts.append("\n".join(table_lines(_plumber_grid(table))))
        top = max(top, tbottom)
    if top < bottom:
        parts.append(page.crop((x0, top, x1, bottom)).extract_text() or "")
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _plumber_grid(table) -> list[list]:
    """pdfplumber's table as a grid of cells, a merged cell repeated over the positions it covers."""
    from .tables import Cell

    texts = table.extract()
    rows = table.rows
    xs = sorted({round(c[0], 1) for c in table.cells} | {round(c[2], 1) for c in table.cells})
    ys = sorted({round(c[1], 1) for c in table.cells} | {round(c[3], 1) for c in table.cells})
    owner = {}  # a cell's bbox -> its text
    for r, row in enumerate(rows):
        for c, bbox in enumerate(row.cells):
            if bbox is not None and r < len(texts) and c < len(texts[r]):
                owner[bbox] = texts[r][c] or ""
    grid = []
    for top, bottom in zip(ys, ys[1:]):
        cy = (top + bottom) / 2
        line = []
        for left, right in zip(xs, xs[1:]):
            cx = (left + right) / 2
            cell = next((b for b in owner if b[0] - 0.5 <= cx <= b[2] + 0.5 and b[1] - 0.5 <= cy <= b[3] + 0.5), None)
            line.append(Cell(owner[cell], cell) if cell is not None else Cell(""))
        grid.append(line)
    return grid


def _ocr_progress(name: str, total: int):
    import sys

    def show(done: int, of: int) -> None:
        end = "\n" if done == of else "\r"
        print(f"OCR {name}: page {done}/{of}", end=end, file=sys.stderr, flush=True)

    return show


def _docx_pages(data: bytes, name: str, budget: _Budget) -> Extracted:
    """Paragraphs and tables in document order, tables as rows with headers; pages split where Word
    last rendered a page break (or, in a file Word never laid out, at explicit page breaks)."""
    import io
    import zipfile
    import zlib

    import docx
    from lxml.etree import LxmlError

    try:
        _check_zip_directory(data, name)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_docx_parts(archive, name, budget)
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, LxmlError, zlib.error, EOFError, OSError) as exc:
        raise UsageError(f"{name} could not be read as a .docx file ({exc}).") from exc
    from docx.table import Table

    body = document.element.body
    rendered = bool(body.xpath(".//w:lastRenderedPageBreak"))
    pages: list[list[str]] = [[]]
    chars = 0
    for i, block in enumerate(document.iter_inner_content()):
        if isinstance(block, Table):
            text = "\n".join(_docx_table_lines(block))
            pages[-1].append(text)
        else:
            pieces = _paragraph_pages(block, rendered)
            pages[-1].append(pieces[0])
            for piece in pieces[1:]:
                pages.append([piece])
            text = "".join(pieces)
        chars += len(text)
        if i % 256 == 0:
            budget.check(chars)
    budget.check(chars)
    texts = tuple("\n\n".join(p) for p in pages)
    return Extracted(texts, paged=len(texts) > 1)


def _paragraph_pages(paragraph, rendered: bool) -> list[str]:
    """The paragraph's text cut where a new page starts: at Word's rendered page breaks when the file
    has them, else at explicit ones (a break before the paragraph: an empty first piece)."""
    ns = paragraph._p.nsmap.get("w") or "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    w = f"{{{ns}}}"
    pieces = [""]
    if not rendered and paragraph._p.xpath("./w:pPr/w:pageBreakBefore[not(@w:val='0') and not(@w:val='false')]"):
        pieces.append("")
    for el in paragraph._p.iter():
        tag = el.tag
        if tag == f"{w}t":
            pieces[-1] += el.text or ""
        elif tag == f"{w}tab":
            pieces[-1] += "\t"
        elif tag in (f"{w}br", f"{w}cr"):
            if el.get(f"{w}type") == "page" and not rendered:
                pieces.append("")
            elif el.get(f"{w}type") not in ("page", "column"):
                pieces[-1] += "\n"
        elif tag == f"{w}lastRenderedPageBreak" and rendered:
            pieces.append("")
    return pieces


def _docx_table_lines(table) -> list[str]:
    """A DOCX table as lines with headers; merged cells (gridSpan, vMerge) resolved by python-docx."""
    from .tables import Cell, table_lines

    grid = []
    for row in table.rows:
        line = []
        for cell in row.cells:  # (a merged cell is returned at every grid position it covers)
            nested = [" ; ".join(_docx_table_lines(t)) for t in cell.tables]
            text = " ".join([cell.text, *nested]) if nested else cell.text
            line.append(Cell(text, cell._tc))  # (lxml keeps one proxy per element)
        grid.append(line)
    return table_lines(grid)


def _doc_pages(data: bytes, name: str, budget: _Budget) -> Extracted:
    """A Word 97–2003 .doc through antiword (Debian's `antiword`): paragraphs, tables as rows with
    headers, pages split at the form feeds antiword writes where it knows them."""
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("antiword")
    if exe is None:
        raise UsageError(f"{name}: reading .doc files needs antiword (apt-get install antiword), which is not "
                         "installed; save it as .docx instead.")
    if not data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # the OLE2 compound file of Word 97–2003
        raise UsageError(f"{name} could not be read as a .doc file (it is not a Word 97–2003 document).")
    with tempfile.TemporaryDirectory(prefix="rag-doc-") as tmp:
        path = Path(tmp) / "in.doc"
        path.write_bytes(data)
        left = max(1.0, budget.deadline - time.monotonic())
        try:
            out = subprocess.run([exe, "-w", "0", "-m", "UTF-8.txt", str(path)], capture_output=True, timeout=left)
        except subprocess.TimeoutExpired:
            raise TooLarge(f"{name} takes more than {MAX_READ_SECONDS} seconds to read; split it into smaller "
                           "files.") from None
    if out.returncode != 0:
        why = out.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"{name} could not be read as a .doc file ({why[-1] if why else 'antiword failed'}).")
    text = out.stdout.decode("utf-8", "replace")
    budget.check(len(text))
    pages = tuple(_antiword_tables(page) for page in text.split("\f"))
    return Extracted(pages, paged=len(pages) > 1)


def _antiword_tables(text: str) -> str:
    """antiword's tables ("|cell |cell |" lines) as rows with headers; the other lines as they are."""
    from .tables import plain_grid, table_lines

    out: list[str] = []
    rows: list[list[str]] = []
    for line in text.split("\n") + [""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            rows.append([cell.strip() for cell in stripped[1:-1].split("|")])
            continue
        if rows:
            out.append("\n".join(table_lines(plain_grid(rows))))
            rows = []
        out.append(line)
    return "\n".join(out[:-1] if out and out[-1] == "" else out)


MAX_SHEET_CELLS = 2_000_000  # in a workbook, counted from each sheet's declared dimension before reading it


def _xlsx_text(data: bytes, name: str, budget: _Budget) -> str:
    """Each sheet of an .xlsx: its name, then its rows with their headers (merged cells resolved)."""
    import io
    import warnings
    import zipfile
    import zlib

    try:
        _check_zip_directory(data, name)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_docx_parts(archive, name, budget)
        import openpyxl

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ("Data Validation extension is not supported" and the like)
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=False, data_only=True)
    except TooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a damaged file
        raise UsageError(f"{name} could not be read as an .xlsx file ({type(exc).__name__}: {exc}).") from exc
    from .tables import Cell, table_lines

    parts, chars, cells = [], 0, 0
    for sheet in book.worksheets:
        cells += (sheet.max_row or 0) * (sheet.max_column or 0)
        if cells > MAX_SHEET_CELLS:
            raise TooLarge(f"{name} holds more than {MAX_SHEET_CELLS:,} cells; split it into smaller files.")
        merged = {}
        for rng in sheet.merged_cells.ranges:
            for r in range(rng.min_row, rng.max_row + 1):
                for c in range(rng.min_col, rng.max_col + 1):
                    merged[(r, c)] = (None, (sheet.title, rng.min_row, rng.min_col))
        grid = []
        for r, row in enumerate(sheet.iter_rows(), 1):
            line = []
            for c, cell in enumerate(row, 1):
                if (r, c) in merged:
                    origin = sheet.cell(*merged[(r, c)][1][1:])
                    line.append(Cell(_cell_text(origin.value, origin.number_format), merged[(r, c)][1]))
                else:
                    line.append(Cell(_cell_text(cell.value, cell.number_format)))
            grid.append(line)
        lines = table_lines(grid)
        if lines:
            parts.append(f"{sheet.title}\n" + "\n".join(lines))
            chars += len(parts[-1])
            budget.check(chars)
    return "\n\n".join(parts)


def _cell_text(value, number_format: str = "General") -> str:
    """A cell's value as a Vietnamese reader writes it: 2,27 not 2.27; 12.345 not 12345; 0.0227 formatted
    as a percentage: 2,27%; dates dd/mm/yyyy."""
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "%" in (number_format or ""):
        decimals = len(number_format.split(".")[1].split("%")[0]) if "." in number_format else 0
        return f"{value * 100:,.{min(decimals, 6)}f}".replace(",", " ").replace(".", ",").replace(" ", ".") + "%"
    if isinstance(value, bool):
        return "có" if value else "không"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}".replace(",", ".")
        whole, _, frac = f"{value:,.6f}".rstrip("0").partition(".")
        return whole.replace(",", ".") + ("," + frac if frac else "")
    return str(value)


def _check_zip_directory(data: bytes, name: str) -> None:
    """TooLarge when the zip's central directory (which zipfile reads whole, ~560 bytes of memory an
    entry) is over MAX_ZIP_DIRECTORY_BYTES; read from the end-of-directory record, as zipfile finds it."""
    record = len(data) - 22
    if record < 0:
        return  # not a zip: zipfile says so
    if data[record:record + 4] != b"PK\x05\x06":
        record = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
        if record < 0 or record + 22 > len(data):
            return
    entries, size = struct.unpack("<HI", data[record + 10:record + 16])
    if size > MAX_ZIP_DIRECTORY_BYTES or entries == 0xFFFF:  # (0xFFFF: a ZIP64 directory, never a .docx)
        raise TooLarge(f"{name} holds too many parts (a zip directory of {size:,} bytes, at most "
                       f"{MAX_ZIP_DIRECTORY_BYTES:,}); it is not a document python-docx should open.")


_START_TAG = re.compile(rb"<[A-Za-z_]")  # an element (not </, <? or <!)
_PARAGRAPH = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,40}:)?p[\s/>]")  # <w:p>, <w:p/>, <x:p …>: any prefix


def _check_docx_parts(archive, name: str, budget: _Budget) -> None:
    """TooLarge when the parts unzip to more than MAX_UNZIPPED_BYTES (from the directory, before anything
    is inflated; zipfile stops at the declared size), or hold more than MAX_XML_ELEMENTS elements or
    MAX_PARAGRAPHS paragraphs (counted on the inflated bytes, 1 MB at a time, before any XML is parsed:
    every part, as [Content_Types].xml may call any of them XML)."""
    members = archive.infolist()
    unzipped = sum(m.file_size for m in members)
    if unzipped > MAX_UNZIPPED_BYTES:
        raise TooLarge(f"{name} expands to {unzipped / 2**20:,.0f} MB once unzipped (at most "
                       f"{MAX_UNZIPPED_BYTES // 2**20} MB); split it into smaller files.")
    elements = paragraphs = 0
    for member in members:
        tail = b""
        with archive.open(member) as part:
            while block := part.read(1 << 20):
                window = tail + block
                elements += sum(1 for m in _START_TAG.finditer(window) if m.end() > len(tail))
                paragraphs += sum(1 for m in _PARAGRAPH.finditer(window) if m.end() > len(tail))
                tail = window[-48:]
                if paragraphs > MAX_PARAGRAPHS:
                    raise TooLarge(f"{name} holds more than {MAX_PARAGRAPHS:,} paragraphs; split it into "
                                   "smaller files.")
                if elements > MAX_XML_ELEMENTS:
                    raise TooLarge(f"{name} holds more than {MAX_XML_ELEMENTS:,} XML elements; split it into "
                                   "smaller files.")
                budget.check()
