"""Query analysis: year, place, expected answer type, and abbreviation expansion.

>>> q = analyse("XKLĐ Nghệ An 2023")
>>> q.years, q.place, q.expects
((2023,), 'Nghệ An', 'count')
>>> "xuất khẩu lao động" in q.normalized
True
>>> analyse("ty le ho ngheo hue 2023").place
'Thừa Thiên Huế'
"""

from __future__ import annotations

import re

from . import gazetteer
from .text import collapse_spaces, fold, has_diacritics, normalize_query, years_in
from .types import Query

# Abbreviations officials write; each expands to the phrases documents use.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "XKLĐ": ("xuất khẩu lao động", "đi làm việc ở nước ngoài"),
    "LĐ-TB&XH": ("Lao động - Thương binh và Xã hội",),
    "LĐTB&XH": ("Lao động - Thương binh và Xã hội",),
    "LĐ-TBXH": ("Lao động - Thương binh và Xã hội",),
    "LĐTBXH": ("Lao động - Thương binh và Xã hội",),
    "BHXH": ("bảo hiểm xã hội",),
    "BHYT": ("bảo hiểm y tế",),
    "BHTN": ("bảo hiểm thất nghiệp",),
    "GDNN": ("giáo dục nghề nghiệp",),
    "GQVL": ("giải quyết việc làm",),
    "NCC": ("người có công",),
    "BTXH": ("bảo trợ xã hội",),
    "HĐND": ("Hội đồng nhân dân",),
    "UBND": ("Ủy ban nhân dân",),
    "TT-Huế": ("Thừa Thiên Huế",),
    "TTH": ("Thừa Thiên Huế",),
    "TP.HCM": ("Thành phố Hồ Chí Minh",),
    "TPHCM": ("Thành phố Hồ Chí Minh",),
    "SL": ("số lượng",),
    "LĐ": ("lao động",),
    "KH": ("kế hoạch",),
}
# Phrases that say the same thing in the documents' words; each adds the others to the query.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("xuất khẩu lao động", "đi làm việc ở nước ngoài", "làm việc ở nước ngoài theo hợp đồng"),
    ("giải quyết việc làm", "tạo việc làm"),
    ("hộ nghèo", "nghèo"),
)
_SYNONYM_RES = [(re.compile(rf"\b{re.escape(fold(p))}\b"), group) for group in SYNONYMS for p in group]
# A few English words users type, mapped to the Vietnamese that documents use.
ENGLISH: dict[str, str] = {
    "poverty rate": "tỷ lệ hộ nghèo", "poor households": "hộ nghèo", "poverty": "hộ nghèo",
    "near-poor": "cận nghèo", "unemployment": "thất nghiệp", "jobs": "giải quyết việc làm",
    "employment": "việc làm", "workers abroad": "đi làm việc ở nước ngoài", "labor export": "xuất khẩu lao động",
    "labour export": "xuất khẩu lao động", "vocational training": "đào tạo nghề", "trained": "qua đào tạo",
    "social insurance": "bảo hiểm xã hội", "health insurance": "bảo hiểm y tế", "gifts": "suất quà",
    "vice chairman": "Phó Chủ tịch", "chairman": "Chủ tịch", "director": "Giám đốc", "conference": "hội nghị",
    "billion": "tỷ đồng", "percent": "tỷ lệ", "rate": "tỷ lệ", "target": "chỉ tiêu kế hoạch",
    "people with meritorious": "người có công", "martyrs": "liệt sỹ", "explosion": "vụ nổ", "boiler": "lò hơi",
    "went abroad": "đi làm việc ở nước ngoài", "abroad": "nước ngoài", "labour contracts": "theo hợp đồng",
    "labor contracts": "theo hợp đồng", "workers": "lao động", "disburse": "giải ngân", "disbursed": "giải ngân",
    "social policy bank": "Ngân hàng Chính sách Xã hội", "job creation": "tạo việc làm", "certificate of merit": "Bằng khen",
    "prime minister": "Thủ tướng Chính phủ", "degrees": "bằng cấp", "certificates": "chứng chỉ",
    "mid-term review": "sơ kết giữa nhiệm kỳ", "review conference": "hội nghị tổng kết", "party committee": "Đảng bộ",
    "people's committee": "Ủy ban nhân dân", "provincial": "tỉnh", "unemployment rate": "tỷ lệ thất nghiệp",
    "minimum wage": "lương tối thiểu", "wage": "tiền lương", "labour sector": "ngành lao động",
    "labor sector": "ngành lao động", "households": "hộ", "near-poor households": "hộ cận nghèo",
    "trained workers": "lao động qua đào tạo", "gift": "quà", "tet": "Tết", "war invalids": "thương binh",
}
_ABBR_RE = re.compile(
    r"(?<![\w&.-])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w&-])",
    re.IGNORECASE,
)
_FOLDED_ABBR = {fold(a): a for a in ABBREVIATIONS}

# Expected answer type: checked in order, on the folded question.
_EXPECTS: tuple[tuple[str, str], ...] = (
    ("code", r"so hieu|ky hieu|so may\b|\bnumber of the (?:decision|resolution)"),
    ("percent", r"ty le|bao nhieu phan tram|may phan tram|phan tram|%|\bpercent|\brate\b|\bshare\b|\bproportion"),
    # "giải ngân … cho bao nhiêu lao động": the thing counted outweighs the money words
    ("count", r"\b(?:bao nhieu|may)\s+(?:nguoi|lao dong|ho|hoc vien|doi tuong|luot|suat|ca nhan|tap the|don vi"
              r"|doanh nghiep|hoc sinh|sinh vien|tre em|vi tri|phien|truong hop)\b"),
    ("money", r"bao nhieu tien|kinh phi|so tien|ngan sach|\bvon\b|giai ngan|ty dong|trieu dong|\bmoney|\bbudget|\bfund"
              r"|how much|\bdisburs"),
    ("date", r"ngay nao|ngay bao nhieu|khi nao|bao gio|thoi gian nao|thang nao|\bwhen\b|what date|which day"),
    ("person", r"\bai\b|nguoi nao|dong chi nao|ong nao|ba nao|la ai|\bwho\b|ho ten|ten cua|ten la gi|ten gi"),
    ("place", r"o dau|tai dau|tinh nao|dia phuong nao|noi nao|\bwhere\b|which province"),
    ("count", r"bao nhieu|so luong|may nguoi|how many|\bso\b|\bmay\b|xkld|lao dong"),
)
# "<noun> nào / gì": the answer is a name introduced by that noun ("Công ty TNHH gỗ Bình Minh").
_ENTITY_HEADS = (
    "công ty", "doanh nghiệp", "trường", "ngân hàng", "nghị quyết", "nghị định", "quyết định", "thông tư",
    "chỉ thị", "chương trình", "đề án", "dự án", "đơn vị", "cơ quan", "tổ chức", "bệnh viện", "huyện", "quận",
    "thị xã", "thành phố", "phường", "xã", "thôn", "bản", "ấp", "quỹ", "nước", "thị trường",
)
_ENGLISH_HEADS = {
    "company": "công ty", "school": "trường", "bank": "ngân hàng", "resolution": "nghị quyết", "decision": "quyết định",
    "district": "huyện", "ward": "phường", "commune": "xã", "programme": "chương trình", "program": "chương trình",
    "country": "nước", "market": "thị trường", "department": "sở", "agency": "cơ quan",
}
_ENTITY_RE = re.compile(
    r"\b(" + "|".join(sorted((fold(h) for h in _ENTITY_HEADS), key=len, reverse=True)) + r")((?:\s+(?!ngay\b|nam\b|thang\b|khi\b|luc\b)\w+){0,2}?)\s+(?:nao|gi)\b"
)
_ENGLISH_ENTITY_RE = re.compile(r"\b(?:which|what)\s+(" + "|".join(_ENGLISH_HEADS) + r")\b")


class EmptyQuestion(ValueError):
    """Nothing is left of the question once it is normalised (invisible characters, spaces)."""


def analyse(text: str) -> Query:
    """Parse a question; raises EmptyQuestion (a ValueError) on an empty one."""
    cleaned = collapse_spaces(normalize_query(text))
    if not cleaned:
        raise EmptyQuestion("nothing is left once invisible characters and spaces are dropped")
    folded = not has_diacritics(cleaned)
    mentions = gazetteer.find_places(cleaned, folded=folded or None)
    if not mentions and not folded:  # "hộ nghèo ở hue": try the unaccented words too
        mentions = [m for m in gazetteer.find_places(cleaned, folded=True) if not has_diacritics(m.surface)]
    places = tuple(dict.fromkeys(m.place.name for m in mentions))
    expects, head = _expects(cleaned)
    return Query(
        text=cleaned,
        normalized=expand(cleaned),
        folded=folded,
        years=tuple(dict.fromkeys(years_in(cleaned))),
        place=places[0] if places else None,
        expects=expects,
        head=head,
        places=places,
        subplace=next((m.via.split(":", 1)[1] for m in mentions[:1] if m.via.startswith("subplace:")), None),
    )


def expand(text: str) -> str:
    """Append the expansions of abbreviations and English terms to the question."""
    extra: list[str] = []
    for m in _ABBR_RE.finditer(text):
        key = next((a for a in ABBREVIATIONS if a.lower() == m.group(1).lower()), None)
        if key:
            extra += ABBREVIATIONS[key]
    for word in re.findall(r"[\w&.-]+", text):  # unaccented abbreviations: "xkld" → XKLĐ
        key = _FOLDED_ABBR.get(fold(word))
        if key and len(word) >= 3:
            extra += ABBREVIATIONS[key]
    folded = fold(text).lower()
    for pattern, group in _SYNONYM_RES:
        if pattern.search(folded):
            extra += [g for g in group if fold(g) not in folded]
    lower = text.lower()
    for english, vietnamese in ENGLISH.items():
        if english in lower and re.search(rf"\b{re.escape(english)}\b", lower):  # (the substring test is the fast one)
            extra.append(vietnamese)
    extra = [e for e in dict.fromkeys(extra) if e.lower() not in lower]
    return " ".join([text, *extra])


def _expects(text: str) -> tuple[str | None, str | None]:
    """The expected answer type, and for a named thing the noun that introduces it."""
    folded = fold(text).lower()
    m = _ENTITY_RE.search(folded)
    if m and m.group(1) != "so":
        words = text.split()
        start = len(folded[:m.start(1)].split())
        return "entity", " ".join(words[start:start + len(m.group(1).split())])
    m = _ENGLISH_ENTITY_RE.search(folded)
    if m:
        return "entity", _ENGLISH_HEADS[m.group(1)]
    for kind, pattern in _EXPECTS:
        if re.search(pattern, folded):
            return kind, None
    return None, None
