"""Gazetteer of Vietnam's 63 provinces and centrally-run cities (the 2008-2025 division).

Finds which province a document or a question talks about, with or without diacritics:

>>> [m.place.name for m in find_places("Tỷ lệ hộ nghèo tỉnh Thừa Thiên Huế năm 2023")]
['Thừa Thiên Huế']
>>> [(m.place.name, m.via) for m in find_places("phường Thịnh Lang (thành phố Hoà Bình)")]
[('Hòa Bình', 'subplace:Thịnh Lang'), ('Hòa Bình', 'name')]
>>> find_places("vì hòa bình thế giới")            # "peace", not the province
[]
>>> [m.place.name for m in find_places("xkld nghe an 2023")]   # no diacritics: folded matching
['Nghệ An']
>>> lookup("tp.hcm").name
'Thành phố Hồ Chí Minh'

Offsets in a `Mention` index the caller's original string (NFC or NFD alike), so
``text[m.start:m.end] == m.surface``.  Only the standard library is used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .text import fold, fold_char
from .text import modern_tone as _modern_tone

# ---------------------------------------------------------------------------- data

_CITIES = {  # centrally-run cities: canonical name -> aliases
    "Hà Nội": ("Hanoi",),
    "Thành phố Hồ Chí Minh": ("TP.HCM", "TP HCM", "TPHCM", "HCM", "TP. Hồ Chí Minh", "Hồ Chí Minh",
                              "Sài Gòn", "Saigon"),
    "Hải Phòng": (),
    "Đà Nẵng": ("Danang",),
    "Cần Thơ": (),
}
_PROVINCES = {  # provinces: canonical name -> aliases
    "Hà Giang": (), "Cao Bằng": (), "Bắc Kạn": ("Bắc Cạn",), "Tuyên Quang": (), "Lào Cai": (),
    "Điện Biên": (), "Lai Châu": (), "Sơn La": (), "Yên Bái": (), "Hòa Bình": (),
    "Thái Nguyên": (), "Lạng Sơn": (), "Quảng Ninh": (), "Bắc Giang": (), "Phú Thọ": (),
    "Vĩnh Phúc": (), "Bắc Ninh": (), "Hải Dương": (), "Hưng Yên": (), "Thái Bình": (),
    "Hà Nam": (), "Nam Định": (), "Ninh Bình": (), "Thanh Hóa": (), "Nghệ An": (),
    "Hà Tĩnh": (), "Quảng Bình": (), "Quảng Trị": (),
    "Thừa Thiên Huế": ("Thừa Thiên - Huế", "TT-Huế", "TT.Huế", "TT Huế", "TP. Huế", "Huế"),
    "Quảng Nam": (), "Quảng Ngãi": (), "Bình Định": (), "Phú Yên": (), "Khánh Hòa": (),
    "Ninh Thuận": (), "Bình Thuận": (), "Kon Tum": ("Kontum",), "Gia Lai": (),
    "Đắk Lắk": ("Đăk Lăk", "Đắc Lắc", "Daklak"), "Đắk Nông": ("Đăk Nông", "Đắc Nông"),
    "Lâm Đồng": (), "Bình Phước": (), "Tây Ninh": (), "Bình Dương": (), "Đồng Nai": (),
    "Bà Rịa - Vũng Tàu": ("Bà Rịa Vũng Tàu", "BR-VT", "BRVT"), "Long An": (),
    "Tiền Giang": (), "Bến Tre": (), "Trà Vinh": (), "Vĩnh Long": (), "Đồng Tháp": (),
    "An Giang": (), "Kiên Giang": (), "Bạc Liêu": (), "Cà Mau": (), "Sóc Trăng": (),
    "Hậu Giang": (),
}

# Names that are also ordinary words ("hòa bình" = peace, "cao bằng" = as tall as): in accented
# text they count only when capitalised, written in capitals, or right after "tỉnh"/"thành phố".
_COMMON_WORD_NAMES = frozenset({
    "Hòa Bình", "Thái Bình", "Bình Định", "Cao Bằng", "Hải Dương", "Hà Nam", "Quảng Nam",
    "An Giang", "Bình Dương", "Hải Phòng", "Phú Thọ", "Yên Bái", "Long An",
})

# Well-known sub-places, grouped by province.  Only names that are unique nationwide (no
# "Châu Thành", "Tân Phú", "Hoàng Mai"); bare "Vinh" and "Tân An" are too ambiguous.
_SUBPLACES_BY_PROVINCE = {
    "Hà Nội": "Hoàn Kiếm, Ba Đình, Đống Đa, Cầu Giấy, Long Biên, Tây Hồ, Thanh Xuân, Hà Đông, "
              "Nam Từ Liêm, Bắc Từ Liêm, Gia Lâm, Đông Anh, Sóc Sơn, Ba Vì, Mê Linh, Chương Mỹ",
    "Thành phố Hồ Chí Minh": "Thủ Đức, Củ Chi, Cần Giờ, Hóc Môn, Nhà Bè, Bình Chánh, Gò Vấp, "
                             "Bình Thạnh, Phú Nhuận",
    "Hải Phòng": "Cát Bà, Đồ Sơn, Bạch Long Vĩ, Thủy Nguyên",
    "Đà Nẵng": "Hải Châu, Sơn Trà, Ngũ Hành Sơn, Liên Chiểu, Hòa Vang",
    "Cần Thơ": "Ninh Kiều, Cái Răng, Ô Môn, Thốt Nốt",
    "Hà Giang": "Đồng Văn, Mèo Vạc, Yên Minh, Quản Bạ, Hoàng Su Phì, Xín Mần",
    "Cao Bằng": "Bảo Lạc, Trùng Khánh, Bản Giốc",
    "Lào Cai": "Sa Pa, Sapa, Bắc Hà, Bát Xát, Si Ma Cai, Mường Khương",
    "Điện Biên": "Điện Biên Phủ, Mường Nhé, Mường Lay, Tủa Chùa, Mường Chà",
    "Lai Châu": "Mường Tè, Sìn Hồ, Phong Thổ, Than Uyên",
    "Sơn La": "Mộc Châu, Mường La, Thuận Châu, Sông Mã, Sốp Cộp, Quỳnh Nhai",
    "Yên Bái": "Nghĩa Lộ, Mù Cang Chải, Trạm Tấu, Lục Yên",
    "Hòa Bình": "Mai Châu, Thịnh Lang, Lạc Sơn, Tân Lạc, Đà Bắc, Kim Bôi, Lương Sơn, Lạc Thủy",
    "Thái Nguyên": "Sông Công, Phổ Yên, Định Hóa",
    "Lạng Sơn": "Đồng Đăng, Cao Lộc",
    "Quảng Ninh": "Hạ Long, Cẩm Phả, Móng Cái, Uông Bí, Vân Đồn, Đông Triều",
    "Bắc Giang": "Lục Ngạn, Yên Thế, Lục Nam, Sơn Động",
    "Phú Thọ": "Việt Trì",
    "Vĩnh Phúc": "Vĩnh Yên, Phúc Yên, Tam Đảo",
    "Bắc Ninh": "Từ Sơn, Yên Phong, Quế Võ",
    "Hải Dương": "Chí Linh, Kinh Môn",
    "Hưng Yên": "Văn Giang, Văn Lâm, Mỹ Hào",
    "Thái Bình": "Quỳnh Phụ, Tiền Hải, Thái Thụy",
    "Hà Nam": "Phủ Lý, Duy Tiên, Kim Bảng",
    "Nam Định": "Hải Hậu, Giao Thủy",
    "Ninh Bình": "Tam Điệp, Hoa Lư, Nho Quan",
    "Thanh Hóa": "Sầm Sơn, Bỉm Sơn, Nghi Sơn, Mường Lát",
    "Nghệ An": "TP Vinh, thành phố Vinh, Cửa Lò, Quỳnh Lưu, Diễn Châu, Nghi Lộc, Con Cuông, "
               "Tương Dương, Quế Phong, Đô Lương, Nam Đàn",
    "Hà Tĩnh": "Hồng Lĩnh, Hương Khê, Vũng Áng, Cẩm Xuyên",
    "Quảng Bình": "Đồng Hới, Phong Nha, Ba Đồn, Bố Trạch, Lệ Thủy",
    "Quảng Trị": "Đông Hà, Khe Sanh, Lao Bảo, Vĩnh Linh, Hướng Hóa",
    "Thừa Thiên Huế": "Phú Vang, A Lưới, Lăng Cô",
    "Quảng Nam": "Hội An, Tam Kỳ, Điện Bàn, Núi Thành, Nam Trà My, Bắc Trà My",
    "Quảng Ngãi": "Lý Sơn, Dung Quất, Ba Tơ",
    "Bình Định": "Quy Nhơn, An Nhơn, Hoài Nhơn, Phù Cát",
    "Phú Yên": "Tuy Hòa, Sông Cầu",
    "Khánh Hòa": "Nha Trang, Cam Ranh, Diên Khánh",
    "Ninh Thuận": "Phan Rang - Tháp Chàm, Phan Rang",
    "Bình Thuận": "Phan Thiết, Mũi Né, La Gi, Tuy Phong",
    "Kon Tum": "Ngọc Hồi, Đắk Glei, Kon Plông, Đắk Tô",
    "Gia Lai": "Pleiku, An Khê, Ayun Pa, Chư Sê, Chư Prông",
    "Đắk Lắk": "Buôn Ma Thuột, Buôn Hồ, Buôn Đôn, Krông Pắc",
    "Đắk Nông": "Gia Nghĩa, Đắk Mil, Krông Nô",
    "Lâm Đồng": "Đà Lạt, Bảo Lộc, Di Linh, Đức Trọng",
    "Bình Phước": "Đồng Xoài, Bù Đăng, Bù Gia Mập, Chơn Thành",
    "Tây Ninh": "Trảng Bàng, Gò Dầu, Tân Biên",
    "Bình Dương": "Thủ Dầu Một, Dĩ An, Bến Cát, Bàu Bàng",
    "Đồng Nai": "Biên Hòa, Vĩnh Cửu, Long Khánh, Nhơn Trạch, Long Thành, Trảng Bom, Định Quán",
    "Bà Rịa - Vũng Tàu": "Vũng Tàu, Bà Rịa, Côn Đảo, Long Điền, Xuyên Mộc",
    "Long An": "TP Tân An, thành phố Tân An, Kiến Tường, Bến Lức, Cần Giuộc",
    "Tiền Giang": "Mỹ Tho, Gò Công, Cai Lậy, Cái Bè",
    "Bến Tre": "Mỏ Cày, Giồng Trôm",
    "Trà Vinh": "Cầu Ngang, Cầu Kè, Trà Cú, Tiểu Cần",
    "Vĩnh Long": "Mang Thít",
    "Đồng Tháp": "Cao Lãnh, Sa Đéc, Hồng Ngự",
    "An Giang": "Long Xuyên, Châu Đốc, Tịnh Biên, Tri Tôn",
    "Kiên Giang": "Rạch Giá, Phú Quốc, Hà Tiên, Kiên Lương",
    "Bạc Liêu": "Giá Rai, Hồng Dân",
    "Cà Mau": "Năm Căn, Ngọc Hiển, Đầm Dơi",
    "Sóc Trăng": "Vĩnh Châu, Kế Sách, Cù Lao Dung",
    "Hậu Giang": "Vị Thanh, Ngã Bảy, Phụng Hiệp",
}

# Sub-places never matched in diacritic-free text: their folded form is an everyday phrase
# ("la gi" = "là gì", "tra cu" ~ "tra cứu", "thanh xuan" = youth).
_NO_FOLD = frozenset({"La Gi", "Trà Cú", "Thanh Xuân", "Năm Căn", "Cần Giờ", "Hải Châu", "Ba Tơ",
                      "Ba Đình", "Đồ Sơn", "Đông Hà", "Bắc Hà", "Gò Công", "Sông Công"})

# Longer phrases that contain a place name but do not mean the place: they are matched
# (longest match wins) and then dropped.
_BLOCKERS = (
    "Thái Bình Dương", "Đồng Tháp Mười", "Giải Nobel Hòa Bình",
    *(f"{p} Hồ Chí Minh" for p in (
        "Chủ tịch", "Bác", "tư tưởng", "tấm gương", "đạo đức", "phong cách", "TNCS", "Cộng sản",
        "đường", "Lăng", "Bảo tàng", "Di chúc", "Giải thưởng", "Huân chương", "Đại tướng")),
)

# A capitalised word just before a sub-place or a common-word name makes it a person's name
# ("Nguyễn Thị Huế", "chị Huế"); an administrative word lets a lowercase name count.
_PERSON_BEFORE = re.compile(
    r"(?:\b(?:Nguyễn|Trần|Lê|Phạm|Hoàng|Huỳnh|Phan|Vũ|Võ|Đặng|Bùi|Đỗ|Ngô|Đào|Vương|Trịnh|"
    r"Trương|Đinh|Lưu|Tạ|Thị|Văn|Đình|Hữu|Ngọc)|(?i:\b(?:anh|chị|ông|bà|cô|em|bé|cháu)))\s+$")
_ADMIN_BEFORE = re.compile(r"(?i:\b(?:tỉnh|thành phố|tp\.?|huyện|quận|thị xã|thị trấn|phường|xã))\s*$")

# ---------------------------------------------------------------------------- API types


@dataclass(frozen=True)
class Place:
    """A province or centrally-run city, e.g. Place("Thừa Thiên Huế", ("Huế", ...), "province")."""

    name: str
    aliases: tuple[str, ...]
    kind: str  # "province" or "city" (centrally-run city)


@dataclass(frozen=True)
class Mention:
    """One place found in a text; ``via`` is "name", "alias" or "subplace:<sub-place>"."""

    place: Place
    start: int
    end: int
    surface: str
    via: str


PLACES: tuple[Place, ...] = tuple(
    [Place(n, a, "city") for n, a in _CITIES.items()]
    + [Place(n, a, "province") for n, a in _PROVINCES.items()])
_BY_NAME = {p.name: p for p in PLACES}
SUBPLACES: dict[str, str] = {sub: prov for prov, subs in _SUBPLACES_BY_PROVINCE.items()
                             for sub in subs.split(", ")}

# ---------------------------------------------------------------------------- normalisation


def _has_diacritics(text: str) -> bool:
    return any(fold_char(c) != c.lower() for c in text if c.isalpha())


def _normalise(text: str) -> tuple[str, Sequence[int], Sequence[int]]:
    """NFC + modern tone placement, with each output char's [start, end) span in ``text``."""
    if unicodedata.is_normalized("NFC", text):
        return _modern_tone(text), range(len(text)), range(1, len(text) + 1)
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    seg = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not unicodedata.combining(text[i]):
            for ch in unicodedata.normalize("NFC", text[seg:i]):
                chars.append(ch)
                starts.append(seg)
                ends.append(i)
            seg = i
    return _modern_tone("".join(chars)), starts, ends


# ---------------------------------------------------------------------------- patterns


_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Entry:
    written: str          # as written in the tables (modern tone, NFC)
    place: Place | None   # None for a blocker (matched, then dropped)
    via: str
    strict_case: bool     # accented text: needs capitals (or "tỉnh ..." before it)


def _regex(written: str) -> str:
    """Surface pattern: spaces flexible, "TP.HCM" ~ "TP. HCM" ~ "TPHCM", "TT-Huế" ~ "TT - Huế"."""
    written = re.sub(r"\s*[-–—]\s*", "-", written)
    written = re.sub(r"^(TP|tp)\.?\s+", r"\1.", written)
    out = []
    for tok in re.findall(r"\w+|\s+|.", written):
        out.append(r"\s+" if tok.isspace() else r"\s*[-–—]\s*" if tok == "-"
                   else r"\.?\s*" if tok == "." else re.escape(tok))
    return "".join(out)


def _entries() -> list[_Entry]:
    out = []
    for p in PLACES:
        out.append(_Entry(p.name, p, "name", p.name in _COMMON_WORD_NAMES))
        for a in p.aliases:
            abbreviation = re.search(r"[A-Z]{2}", a) is not None
            out.append(_Entry(a, p, "alias", not abbreviation and " " not in a.strip()))
    for sub, prov in SUBPLACES.items():
        out.append(_Entry(sub, _BY_NAME[prov], f"subplace:{sub}", True))
    out.extend(_Entry(b, None, "blocker", False) for b in _BLOCKERS)
    return out


def _compile(entries: list[_Entry], key) -> dict[str, tuple[re.Pattern, tuple[_Entry, ...]]]:
    """Lowercase first word -> (pattern tried where that word starts, its entries).

    Alternatives go longest first; group "g<i>" of the pattern is entry i.
    """
    by_word: dict[str, list[_Entry]] = {}
    for e in entries:
        by_word.setdefault(_WORD.match(key(e)).group().lower(), []).append(e)
    out = {}
    for word, group in by_word.items():
        group.sort(key=lambda e: (-len(key(e).split()), -len(key(e))))
        alts = "|".join(f"(?P<g{i}>{_regex(key(e))})" for i, e in enumerate(group))
        out[word] = (re.compile(rf"(?:{alts})(?!\w)", re.IGNORECASE), tuple(group))
    return out


def _foldable(e: _Entry) -> bool:
    """Diacritic-free text: skip risky sub-places and one-syllable sub-places such as "vinh"."""
    if not e.via.startswith("subplace:"):
        return True
    return e.written not in _NO_FOLD and not re.fullmatch(r"\w{1,5}", fold(e.written))


def _trie(words: list[str]) -> str:
    """One regex alternation of `words`, factored by common prefixes ("an|ayun" -> "a(?:n|yun)")."""
    root: dict = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def alternation(node: dict) -> str:
        alts = [re.escape(ch) + alternation(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        return f"(?:{'|'.join(alts)}){'?' if '' in node else ''}"

    return alternation(root)


def _finder(matchers: dict) -> re.Pattern:
    """The whole words of a lowercased text that are keys of `matchers` (the words where a place can start)."""
    return re.compile(rf"(?<!\w){_trie(sorted(matchers))}(?!\w)")


_ALL = _entries()
_ACCENTED = _compile(_ALL, lambda e: _modern_tone(e.written))
_FOLDED = _compile([e for e in _ALL if _foldable(e)], lambda e: fold(e.written))
_FINDERS = {False: _finder(_ACCENTED), True: _finder(_FOLDED)}

# ---------------------------------------------------------------------------- matching


def _case_ok(surface: str, written: str) -> bool:
    """Every syllable capitalised in ``written`` must be capitalised in ``surface`` (or ALL CAPS)."""
    if surface.isupper():
        return True
    return all(s[0].isupper() or not w[0].isupper()
               for s, w in zip(re.findall(r"\w+", surface), re.findall(r"\w+", written)))


def _accept(entry: _Entry, norm: str, start: int, end: int, folded: bool) -> bool:
    """Case and person-name checks, for strict entries in accented text only."""
    if folded or not entry.strict_case:
        return True
    before = norm[max(0, start - 20):start]
    if _PERSON_BEFORE.search(before):
        return False
    # after "tỉnh": "Hòa bình" and "hòa bình" pass; "Xã hội An Giang" is not "xã Hội An" (a capital mid-name)
    surface = norm[start:end]
    plain = surface[0].isupper() or surface.islower()
    return _case_ok(surface, entry.written) or (plain and _ADMIN_BEFORE.search(before) is not None)


def find_places(text: str, *, folded: bool | None = None) -> list[Mention]:
    """Places mentioned in ``text``, left to right, longest match first, never overlapping.

    ``folded=None`` picks folded (diacritic-free, case-insensitive) matching when ``text`` has no
    Vietnamese diacritics at all ("ty le ho ngheo hue 2023"); ``True``/``False`` force a mode.
    In accented text, names that are also words need capitals: "Hòa Bình" yes, "hòa bình" no.
    Offsets index ``text`` as given (NFD input included): ``text[m.start:m.end] == m.surface``.
    """
    norm, starts, ends = _normalise(text)
    if folded is None:
        folded = not _has_diacritics(norm)
    matchers = _FOLDED if folded else _ACCENTED
    haystack = "".join(fold_char(c) for c in norm) if folded else norm
    mentions: list[Mention] = []
    pos = 0
    lowered = haystack.lower()
    # Only the words that are keys of `matchers` can start a place: a regex finds them in the lowercased
    # text (a few per text instead of a Python step per word). Lowercasing maps each character to one
    # (unless the length changed: "İ"), so the words keep their offsets; the lookup below is the test.
    if len(lowered) == len(haystack):
        words = _FINDERS[folded].finditer(lowered)
    else:
        words = _WORD.finditer(haystack)
    for word in words:
        if word.start() < pos or (found := matchers.get(haystack[word.start():word.end()].lower())) is None:
            continue
        pattern, entries = found
        m = pattern.match(haystack, word.start())
        if m is None:
            continue
        entry = entries[int(m.lastgroup[1:])]
        if not _accept(entry, norm, m.start(), m.end(), folded):
            continue
        pos = m.end()
        if entry.place is not None:
            s, e = starts[m.start()], ends[m.end() - 1]
            mentions.append(Mention(entry.place, s, e, text[s:e], entry.via))
    return mentions


def province_counts(text: str) -> dict[str, float]:
    """Canonical name -> weighted mentions (name/alias 1.0, sub-place 0.5).

    >>> province_counts("Cửa Lò (Nghệ An)")
    {'Nghệ An': 1.5}
    """
    counts: dict[str, float] = {}
    for m in find_places(text):
        weight = 0.5 if m.via.startswith("subplace:") else 1.0
        counts[m.place.name] = counts.get(m.place.name, 0.0) + weight
    return counts


# A provincial outlet or portal names its province: "Nguồn: Báo Lâm Đồng", "Đài PT-TH Nghệ An", "Cổng thông tin
# điện tử tỉnh Quảng Trị", or its address: "baolamdong.vn", "nghean.gov.vn".
_OUTLET = re.compile(r"\b(?:Báo|Đài\s+(?:PT-TH|PT&TH|PTTH|Phát\s+thanh\s*(?:-|–|và)?\s*Truyền\s+hình)|"
                     r"Cổng\s+(?:thông\s+tin\s+)?(?:điện\s+tử\s+)?(?:tỉnh|thành\s+phố|TP\.?)?)\s+(?=\w)")
_PORTAL = re.compile(r"\b(?:www\.)?(?:bao|dai|truyenhinh)?([a-z]{3,30})\.(?:gov\.|org\.|com\.)?vn\b", re.I)


def publisher_province(text: str) -> Place | None:
    """The province of the outlet or portal that published a text, when a line names one (the place must follow
    the outlet's name directly, "Báo Lâm Đồng"; a national outlet, "Báo Lao Động", names none)."""
    for m in _OUTLET.finditer(text):
        found = find_places(text[m.end():m.end() + 40], folded=False)
        if found and found[0].start == 0 and not found[0].via.startswith("subplace:"):
            return found[0].place
    for m in _PORTAL.finditer(text):
        place = _LOOKUP.get(m.group(1).lower())
        if place is not None:
            return place
    return None


def _key(name: str) -> str:
    return re.sub(r"[\W_]+", "", fold(_modern_tone(unicodedata.normalize("NFC", name))))


_LOOKUP: dict[str, Place] = {}
for _e in reversed(_ALL):  # names and aliases override sub-places
    if _e.place is not None:
        _LOOKUP[_key(_e.written)] = _e.place


def lookup(name: str) -> Place | None:
    """Place for a name, alias or sub-place, any case or accents: lookup("hue") -> Thừa Thiên Huế.

    A leading "tỉnh"/"thành phố"/"TP." is ignored when the full string is unknown.
    """
    key = _key(name)
    if key in _LOOKUP:
        return _LOOKUP[key]
    stripped = re.sub(r"^\s*(?:tinh|thanh pho|tp\.?)\s*", "", fold(name))
    return _LOOKUP.get(_key(stripped)) if stripped != fold(name) else None
