"""Typed answer candidates inside a sentence: percentages, money, counts with units, dates, people,
places, named things ("Công ty TNHH gỗ Bình Minh", "Nghị quyết số 42-NQ/TW"), and their values.

>>> s = "Tỷ lệ hộ nghèo 2,27%, giảm 1,29% so với năm 2022."
>>> [s[a:b] for a, b in candidates("percent", s)]
['2,27%', '1,29%']
>>> s = "giải quyết việc làm cho khoảng 24 ngàn người [1]"
>>> [s[a:b] for a, b in candidates("count", s)]
['khoảng 24 ngàn người']
>>> value("khoảng 24 ngàn người"), value("2,27%"), value("17.034 người")
(24000.0, 2.27, 17034.0)
"""

from __future__ import annotations

import re

from . import gazetteer
from .text import fold

_NUM = r"(?<![\w.,/])\d+(?:[.,]\d+)*"
_QUANT = r"(?:(?:khoảng|hơn|trên|gần|dưới|tới|ước)\s+)?"
_UNITS = (
    r"người|lao động|hộ|học viên|đối tượng|suất quà|suất|cá nhân|tập thể|chỉ tiêu|vị trí việc làm|"
    r"phiên|đơn vị|lượt|SV|HS|HV|trẻ em|xã|phường|huyện|ngôi nhà|căn nhà|nhà|doanh nghiệp|cơ sở|"
    r"trường|lớp|thẻ|hồ sơ|trường hợp|công trình|mô hình|dự án|gia đình|thôn|bản|tỷ đồng|triệu đồng"
)
PATTERNS: dict[str, re.Pattern] = {
    "percent": re.compile(rf"{_QUANT}(?:từ\s+)?{_NUM}(?:\s*%?\s*(?:-|–|đến)\s*{_NUM})?\s?%"),
    "money": re.compile(rf"{_QUANT}{_NUM}\s*(?:tỷ|triệu|nghìn|ngàn)?\s*(?:đồng|USD|usd)", re.I),
    "count": re.compile(
        rf"{_QUANT}{_NUM}(?:/\d+)?(?:\s*(?:ngàn|nghìn|triệu|vạn))?\s+(?:lượt\s+)?(?:{_UNITS})\b"
    ),
    "date": re.compile(
        r"(?:[Nn]gày\s+)?(?<!\d)\d{1,2}/\d{1,2}(?:/\d{4})?(?![\d/])|ngày \d{1,2} tháng \d{1,2}(?: năm \d{4})?|tháng \d{1,2}/\d{4}"
    ),
    "number": re.compile(rf"{_QUANT}{_NUM}(?:/\d+)?(?:\s*(?:ngàn|nghìn|triệu|tỷ))?"),
    "code": re.compile(
        r"(?:(?:Quyết định|Nghị quyết|Nghị định|Thông tư|Chỉ thị|Kế hoạch|Công văn|Kết luận|Luật)\s+)?"
        r"số\s+\d+[\w/.-]*/[\w/.-]*\w",
        re.I,
    ),
}
_TITLES = (
    "Phó Chủ tịch thường trực UBND tỉnh", "Phó Chủ tịch UBND tỉnh", "Chủ tịch UBND tỉnh", "Phó Chủ tịch HĐND tỉnh",
    "Phó Chủ tịch", "Chủ tịch", "Phó Giám đốc Sở", "Giám đốc Sở", "Phó Giám đốc", "Giám đốc", "Trưởng phòng",
    "Bộ trưởng", "Thứ trưởng", "Bí thư", "Phó Bí thư", "Đồng chí", "đồng chí", "Ông", "ông", "Bà", "bà",
)
_ADDRESS = frozenset({"Đồng chí", "đồng chí", "Ông", "ông", "Bà", "bà"})  # forms of address, not offices
ADDRESS_BEFORE = re.compile(rf"^(?:{'|'.join(sorted(_ADDRESS, key=len, reverse=True))})\s+")  # "Ông Nguyễn…"
SURNAMES = frozenset((
    "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đoàn Đinh Lương Trương Mai Cao Lâm "
    "Tạ Hà Châu Tô Trịnh Quách Lưu Đào Thái Kiều Thân Triệu La Từ Chu Tăng Lục Mạc Hứa Khúc Vương Đàm Nông Lò "
    "Lại Giang Kim Tống Văn Âu Doãn Khổng Ông Phùng Quan Tôn Trình Tiêu Hàn Hầu Mã Lã Diệp Thạch Viên Bạch"
).split())
_NOT_NAMES = frozenset({"Lao Động", "Thương Binh", "Xã Hội", "Ủy Ban", "Nhân Dân", "Chính Phủ", "Thủ Tướng"})
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_BRACKETED = re.compile(r"\[\d+\]|\(\d+\)")
_YEAR = re.compile(r"(?:19|20)\d{2}")
# after a bare number: a duration ("5 năm") or a code ("714/QĐ-UBND"), not an amount
_NOT_AN_AMOUNT = re.compile(r"\s*(?:năm|tháng|tuần|ngày|giờ|phút|giây|thế kỷ)\b|[/-][A-ZĐ]")
_IN_YEAR = re.compile(r"(?:(?:vào\s+)?năm\s+)?(?<!\d)1?\d{3}(?!\d)|thế kỷ (?:thứ )?\w+")
# Words that may sit inside a name after its head: "Công ty TNHH gỗ Bình Minh", "Kỹ thuật – Tổng hợp".
_NAME_GLUE = frozenset({"–", "-", "&", "và", "số"})


def candidates(kind: str | None, sentence: str, head: str | None = None, loose: bool = False) -> list[tuple[int, int]]:
    """Spans of values of the given kind in the sentence; bare years and footnote marks excluded.
    `loose`: when no name of the kind is found, any run of capitalised words will do."""
    if kind == "person":
        spans = person_spans(sentence) or office_spans(sentence)
    elif kind == "place":
        spans = [(m.start, m.end) for m in gazetteer.find_places(sentence, folded=False)]
        spans += _named_after(sentence, ("tỉnh", "thành phố", "huyện", "quận", "thị xã", "xã", "phường"))
    elif kind == "entity":
        spans = _named_after(sentence, (head,) if head else ())
        if head and fold(head).lower() in _GENERIC_ORG_HEADS:  # "cơ quan nào" → "Công an phường Thịnh Lang"
            spans += [(a, b) for a, b in _named_after(sentence, _ORGS) if sentence[a].isupper()]
    elif kind in PATTERNS:
        spans = [m.span() for m in PATTERNS[kind].finditer(sentence)]
        if not spans and kind in ("count", "money"):  # a bare number, not a duration ("5 năm") nor a code
            spans = [m.span() for m in PATTERNS["number"].finditer(sentence) if not _NOT_AN_AMOUNT.match(sentence, m.end())]
    else:
        spans = []
    if loose and not spans and kind in ("person", "place", "entity"):
        spans = proper_names(sentence)  # "Charles de Gaulle", "Puerto Rico"
    marks = [m.span() for m in _BRACKETED.finditer(sentence)]
    if not spans and kind == "date":  # no day written: the year is the answer ("năm 1898")
        return [m.span() for m in _IN_YEAR.finditer(sentence)]
    return [
        (a, b) for a, b in dict.fromkeys(spans)
        if not _YEAR.fullmatch(sentence[a:b].strip()) and not any(s <= a and b <= e for s, e in marks)
    ]


_GENERIC_ORG_HEADS = frozenset({"co quan", "don vi", "to chuc"})
_ORGS = ("Công an", "Sở", "Ủy ban", "UBND", "Phòng", "Ban", "Cục", "Chi cục", "Trung tâm", "Ngân hàng", "Bệnh viện",
         "Trường", "Công ty", "Liên đoàn", "Đảng ủy", "Tỉnh ủy", "Bộ", "Viện", "Quỹ", "Bảo hiểm xã hội", "Kho bạc",
         "Bưu điện", "Đoàn")
_ORG_WORDS = frozenset("Sở Bộ Ủy Ban Hội Nghị Trung Đảng Tỉnh Thành Công Ngân Trường Quỹ Chính Phó Chủ Giám Lao Thương Xã "
                       "Nhà Quyết Kế Thông Chỉ Luật Đại Tổng Cục Viện Sông Phường Huyện Quận Năm Ngày Tháng".split())
_PARTICLES = frozenset({"de", "van", "von", "der", "la", "le", "du", "di", "da", "al", "bin", "of"})


def proper_names(sentence: str) -> list[tuple[int, int]]:
    """Runs of capitalised words not opening the sentence ("Charles de Gaulle", "Puerto Rico")."""
    words = list(re.finditer(r"[^\W\d_][\w'.-]*", sentence))
    spans, run = [], []
    for i, w in enumerate(words):
        text = w.group()
        gap = sentence[run[-1].end():w.start()] if run else " "
        if text[0].isupper() and i > 0 and gap.strip() in ("", "-") and (run or text not in _ORG_WORDS):
            run.append(w)
        elif run and text in _PARTICLES and gap == " ":
            run.append(w)
        else:
            if run:
                while run and run[-1].group() in _PARTICLES:
                    run.pop()
                if run:
                    spans.append((run[0].start(), run[-1].end()))
            run = [w] if text[0].isupper() and i > 0 and text not in _ORG_WORDS else []
    while run and run[-1].group() in _PARTICLES:
        run.pop()
    if run:
        spans.append((run[0].start(), run[-1].end()))
    return spans


def person_spans(sentence: str) -> list[tuple[int, int]]:
    """Names: a surname followed by one to three capitalised syllables ("Nguyễn Thị Ái Vân")."""
    words = list(_WORD.finditer(sentence))
    spans = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.group() in SURNAMES:
            j = i + 1
            while j < len(words) and j - i <= 3 and words[j].group()[0].isupper() \
                    and sentence[words[j - 1].end():words[j].start()] == " ":
                j += 1
            if j - i >= 2:
                a, b = w.start(), words[j - 1].end()
                name = sentence[a:b]
                if name not in _NOT_NAMES and not gazetteer.lookup(name):
                    spans.append((a, b))
                i = j
                continue
        i += 1
    return spans


_OFFICES = ("Chủ tịch", "Giám đốc", "Bí thư", "Trưởng phòng", "Trưởng ban", "Bộ trưởng", "Thứ trưởng", "Thủ tướng")
_OFFICE_PREFIX = re.compile(r"(?:(?:Quyền|Phó|quyền|phó|Tổng)\s+)+$")


def office_spans(sentence: str) -> list[tuple[int, int]]:
    """An office named without its holder: "Quyền Chủ tịch UBND tỉnh Đồng Nai (yêu cầu …)"."""
    spans = []
    for a, b in _named_after(sentence, _OFFICES):
        if not sentence[a].isupper() or b - a <= len(sentence[a:b].split()[0]) + 9:
            continue  # a bare "Chủ tịch": not who
        prefix = _OFFICE_PREFIX.search(sentence[:a])
        spans.append((prefix.start() if prefix else a, b))
    return [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]


def titles_near(sentence: str, start: int, end: int) -> list[str]:
    """Titles written right before a name ("Phó Chủ tịch HĐND tỉnh Nguyễn Thị Ái Vân") or right after
    it ("Nguyễn Văn Toàn, Phó Chủ tịch UBND tỉnh"; "Hoàng Văn Phúc – Thị ủy viên, Phó Chủ tịch")."""
    before = sentence[max(0, start - 60):start].rstrip()
    found = [t for t in _TITLES if before.endswith(t)][:1]
    if found and found[0] not in _ADDRESS:
        return found  # "…UBND tỉnh Nguyễn Thanh Bình, Phó Chủ tịch HĐND tỉnh Nguyễn Thị Ái Vân": the next is hers
    after = sentence[end:end + 80]
    m = re.match(r"\s*[,–-]\s*(?:[^,;.()]{0,25},\s*)?", after)
    if m:
        rest = after[m.end():]
        found += [t for t in _TITLES if rest.startswith(t)][:1]
    return found


def _named_after(sentence: str, heads: tuple[str, ...]) -> list[tuple[int, int]]:
    """"<head> <Name…>": the head word followed by the name it introduces, up to punctuation, with
    trailing lowercase words dropped ("Nghị quyết số 42-NQ/TW về …" → "Nghị quyết số 42-NQ/TW")."""
    spans = []
    folded = fold(sentence).lower()
    for head in filter(None, heads):
        h = fold(head).lower()
        for m in re.finditer(rf"(?<!\w){re.escape(h)}(?!\w)", folded):
            tail = re.match(r"[^,;:.()\[\]\n“”\"]*", sentence[m.end():m.end() + 120]).group()
            toks = list(re.finditer(r"\S+", tail))[:10]
            keep = 0
            for n, t in enumerate(toks):
                word = t.group()
                if word[0].isupper() or word[0].isdigit() or word in _NAME_GLUE or word.isupper():
                    keep = n + 1
                elif n + 1 < len(toks) and n < 8 and (toks[n + 1].group()[0].isupper() or toks[n + 1].group() in _NAME_GLUE):
                    continue  # "gỗ Bình Minh", "vùng cao Mai Châu", "Kỹ thuật – Tổng hợp"
                elif keep == 0 and n < 2 and word.islower():
                    continue
                else:
                    break
            if keep:
                end = m.end() + toks[keep - 1].end()
                while end > m.end() and sentence[end - 1] in "–-& ":
                    end -= 1
                spans.append((m.start(), end))
    return spans


# "17.034" and "1.234,5" (dots group thousands, a comma marks decimals), "2,27", "25"; a lone dot is
# read as grouping too ("2.5" = 25), as it always was here
_A_NUMBER = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?")
_MULTIPLIERS = {"ngàn": 1e3, "nghìn": 1e3, "vạn": 1e4, "triệu": 1e6, "tỷ": 1e9}


def value(span: str) -> float | None:
    """The number a span states, Vietnamese style: "17.034" = 17034, "2,27" = 2.27, "24 ngàn" = 24000;
    None when it states none, or a list ("1,2,3 người")."""
    m = re.search(r"\d+(?:[.,]\d+)*", span)
    if not m:
        return None
    digits = m.group()
    if not _A_NUMBER.fullmatch(digits):
        return None  # "1,2,3 người": a list; "1.2.3": a section number
    number = float(digits.replace(".", "").replace(",", "."))
    after = span[m.end():].split()
    if after and after[0] in _MULTIPLIERS:
        number *= _MULTIPLIERS[after[0]]
    return number
