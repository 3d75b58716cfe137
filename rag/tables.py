"""A table as lines of text, each data row carrying its column headers.

    >>> grid = [[Cell("Chỉ tiêu"), Cell("Năm 2022"), Cell("Năm 2023")],
    ...         [Cell("Tỷ lệ hộ nghèo"), Cell("3,56%"), Cell("2,27%")]]
    >>> table_lines(grid)
    ['Tỷ lệ hộ nghèo | Năm 2022: 3,56% | Năm 2023: 2,27%']

A question about a cell ("tỷ lệ hộ nghèo năm 2023") then finds one line that names the row, the
column and the value, and the citation points at that row.

The loaders (DOCX, PDF, XLSX, .doc) turn their tables into a grid of `Cell`s: a merged cell is
repeated over every position it covers, with the same `key`, so that a header spanning two columns
("Năm 2023" over "Kế hoạch | Thực hiện") heads both, and a value is printed once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADER_ROWS = 3
_NUMERIC = re.compile(r"[-+−]?\s*(?:\d[\d.,\s]*)(?:%|‰)?|[-–—x]")  # a value, not a label ("Năm 2023" is a label)
_ORDINAL = re.compile(r"(?:\d{1,3}|[IVXLC]{1,6}|[a-zđ])[.)]?", re.I)  # "1", "II", "a)": the STT column
_ORDINAL_HEADER = re.compile(r"(?:số\s*)?t\.?\s*t\.?|stt", re.I)
_UNIT_HEADER = re.compile(r"đơn\s*vị(?:\s*tính)?|đvt|đ\.v\.t\.?", re.I)  # its values go with the row's numbers


@dataclass(frozen=True)
class Cell:
    text: str
    key: object = None  # the same key over every position of a merged cell; None: a cell of its own


def table_lines(grid: list[list[Cell]]) -> list[str]:
    """Lines of text for the table: title rows as they are, then one line per data row,
    "label | header: value | header: value"; empty rows and empty values are left out."""
    grid = [[Cell(_flat(c.text), c.key) for c in row] for row in grid if row]
    grid = [row for row in grid if any(c.text for c in row)]
    if not grid:
        return []
    width = max(len(row) for row in grid)
    grid = [row + [Cell("")] * (width - len(row)) for row in grid]
    lines: list[str] = []
    while grid and _is_title(grid[0]):  # "Biểu 1: Kết quả thực hiện …" across the whole table
        lines.append(next(c.text for c in grid[0] if c.text))
        grid = grid[1:]
    if not grid:
        return lines
    n_head = _header_rows(grid)
    headers = [_column_header(grid[:n_head], col) for col in range(width)]
    labels = _label_columns(grid[n_head:], headers)
    unit_col = next((c for c, h in enumerate(headers) if _UNIT_HEADER.fullmatch(h)), None)
    for r in range(n_head, len(grid)):
        line = _row_line(grid, r, headers, labels, unit_col)
        if line:
            lines.append(line)
    return lines


def _flat(text: str | None) -> str:
    return " ".join((text or "").split())


def _is_title(row: list[Cell]) -> bool:
    """A row that is one merged cell across the table (or a single filled cell in a wide table)."""
    filled = [c for c in row if c.text]
    if len(row) < 2 or not filled:
        return False
    one_cell = all(c.key is not None and c.key == row[0].key for c in row)
    return one_cell or (len(filled) == 1 and len(row) >= 3 and not _NUMERIC.fullmatch(filled[0].text))


def _is_value(text: str) -> bool:
    return bool(text) and bool(_NUMERIC.fullmatch(text))


def _header_rows(grid: list[list[Cell]]) -> int:
    """How many leading rows are headers: those with no value outside the first column, at most
    MAX_HEADER_ROWS, always leaving a data row; 0 when the first row already holds values."""
    n = 0
    while n < min(MAX_HEADER_ROWS, len(grid) - 1):
        row = grid[n]
        if any(_is_value(c.text) for c in row[1:]) or not any(c.text for c in row):
            break
        if n and _is_section_row(row):
            break
        n += 1
    return n


def _is_section_row(row: list[Cell]) -> bool:
    """A data row that only names a group ("I. Kinh tế") in its first cells."""
    filled = [i for i, c in enumerate(row) if c.text]
    return bool(filled) and filled[-1] <= 1 and len(row) > 2


def _column_header(rows: list[list[Cell]], col: int) -> str:
    """The column's header: the header rows' texts, top to bottom, each merged cell once."""
    parts: list[str] = []
    seen: set = set()
    for row in rows:
        cell = row[col]
        mark = cell.key if cell.key is not None else id(cell)
        if not cell.text or mark in seen or (parts and parts[-1] == cell.text):
            continue
        seen.add(mark)
        parts.append(cell.text)
    return " ".join(parts)


def _label_columns(rows: list[list[Cell]], headers: list[str]) -> int:
    """How many leading columns name the row: the first one, or the STT column and the one after it (2)."""
    if len(headers) < 2:
        return len(headers)
    first = [row[0].text for row in rows if row[0].text]
    ordinal = _ORDINAL_HEADER.fullmatch(headers[0] or "") or (first and all(_ORDINAL.fullmatch(t) for t in first))
    return 2 if ordinal and len(headers) > 2 else 1


def _row_line(grid: list[list[Cell]], r: int, headers: list[str], labels: int, unit_col: int | None = None) -> str:
    """"label | header: value …"; with a unit column ("ĐVT"), each number carries the row's unit ("4,63%")."""
    row = grid[r]
    unit = row[unit_col].text if unit_col is not None else ""
    label: list[str] = []
    values: list[str] = []
    for col, cell in enumerate(row):
        if not cell.text or (col == unit_col and unit):
            continue
        if unit and col >= labels and _is_value(cell.text) and any(ch.isdigit() for ch in cell.text):
            cell = Cell(f"{cell.text}%" if unit == "%" else f"{cell.text} {unit}", cell.key)
        if col and cell.key is not None and row[col - 1].key == cell.key:
            continue  # a cell merged across columns: its value once, under its first column's header
        if col == 0 and labels == 2:
            continue  # the STT column's "1", "II": an ordinal says nothing about the row
        if col < labels:  # a number naming the row takes its header: "Năm 2023", not "2023"
            named = _is_value(cell.text) and headers[col] and not _ORDINAL_HEADER.fullmatch(headers[col])
            label.append(f"{headers[col]} {cell.text}" if named else cell.text)
        elif headers[col] and headers[col] != cell.text:
            values.append(f"{headers[col]}: {cell.text}")
        else:
            values.append(cell.text)
    return " | ".join(part for part in (" ".join(label), *values) if part)


def cell_header(line: str, pos: int) -> str | None:
    """The column header of the value at `pos` in a row line ("… | Năm 2023: 2,27%" → "Năm 2023"), or None
    when `line` is not a row of a table or the value has no header.

    >>> cell_header("Tỷ lệ hộ nghèo | Năm 2022: 3,56% | Năm 2023: 2,27%", 45)
    'Năm 2023'
    """
    if " | " not in line:
        return None
    start = line.rfind(" | ", 0, pos)
    start = 0 if start < 0 else start + 3
    end = line.find(" | ", pos)
    segment = line[start:end if end >= 0 else len(line)]
    head, sep, _ = segment.partition(": ")
    if not sep or start + len(head) + 2 > pos:
        return None
    return head


def cell_span(line: str, pos: int) -> tuple[int, int] | None:
    """The bounds of the whole value around `pos` in a row line ("415 triệu USD", not "415 triệu"),
    or None when `pos` is not inside a "header: value" cell of a row."""
    if cell_header(line, pos) is None:
        return None
    start = line.rfind(": ", 0, pos + 1) + 2
    end = line.find(" | ", pos)
    return start, end if end >= 0 else len(line.rstrip(" .;"))


def value_spans(line: str) -> list[tuple[int, int]]:
    """The "header: value" cells' values of a row line, in order; [] for any other line."""
    if " | " not in line:
        return []
    spans = []
    pos = 0
    for segment in line.split(" | "):
        head, sep, value = segment.partition(": ")
        if sep and value.strip():
            start = pos + len(head) + 2
            spans.append((start, start + len(value.rstrip(" .;"))))
        pos += len(segment) + 3
    return spans


def plain_grid(rows: list[list[str | None]]) -> list[list[Cell]]:
    """A grid of cells from plain rows (no merges known)."""
    return [[Cell(text or "") for text in row] for row in rows]


__all__ = ["Cell", "cell_header", "cell_span", "plain_grid", "table_lines", "value_spans"]
