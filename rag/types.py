"""The typed values passed between the stages of the pipeline.

load → Document → chunk → Chunk → (embed, tokenize) → index
question → Query → retrieve → Hit → answer → Answer(Citation…)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DocMeta:
    """What we know about a document besides its text."""

    title: str = ""
    dates: tuple[str, ...] = ()  # ISO dates found in the document ("2024-01-08")
    years: tuple[int, ...] = ()  # years mentioned, most frequent first
    year: int | None = None  # the year the document reports on
    province: str | None = None  # canonical gazetteer name ("Thừa Thiên Huế")
    province_confidence: float = 0.0  # 1.0 = named in the body; lower = inferred from related news
    author: str | None = None


@dataclass(frozen=True)
class Section:
    """A span of the cleaned text: the main body, or one related-news item."""

    start: int
    end: int
    kind: str = "body"  # "body" | "related" | "footnotes"


@dataclass(frozen=True)
class Document:
    id: str  # the file stem: "004_1400c37e89a2c6fc"
    source: str  # the file for people: relative to the directory it was indexed from when under it
    #              ("seeds/004_1400c37e89a2c6fc.txt"), else absolute
    text: str  # the cleaned text; citations are offsets into it
    sha256: str  # hash of the raw file bytes
    meta: DocMeta = field(default_factory=DocMeta)
    sections: tuple[Section, ...] = ()
    path: str = ""  # the file's absolute, resolved path: what identifies it ("" in indexes written before it was kept)
    pages: tuple[int, ...] = ()  # where each page starts in `text` (PDF pages, DOCX page breaks); () = not paged
    ocr_pages: tuple[int, ...] = ()  # the pages (1-based) whose text was read by OCR

    def page_at(self, offset: int) -> int | None:
        """The page (1-based) that holds text[offset], or None when the document has no pages."""
        if not self.pages:
            return None
        import bisect

        return max(1, bisect.bisect_right(self.pages, offset))


@dataclass(frozen=True)
class Chunk:
    id: str  # "<doc_id>:<start>-<end>", stable across rebuilds
    doc_id: str
    text: str  # == document.text[start:end]
    start: int
    end: int
    header: str = ""  # "title · province · date", indexed but not quoted
    extra: str = ""  # linked text (footnotes ↔ citing sentence), indexed but not quoted
    section: str = "body"
    places: tuple[str, ...] = ()  # provinces its text names (gazetteer), found when it was chunked

    @property
    def body(self) -> str:
        """The chunk's own text and its linked text: what the coverage features read."""
        return f"{self.text}\n{self.extra}" if self.extra else self.text

    @property
    def index_text(self) -> str:
        """The text that the embedder and BM25 see."""
        return "\n".join(part for part in (self.header, self.text, self.extra) if part)


@dataclass(frozen=True)
class Comparison:
    """What a question comparing places asks: "Tỉnh nào có tỷ lệ hộ nghèo năm 2023 thấp hơn, Hòa Bình hay Huế?"."""

    more: bool  # the larger value wins ("cao hơn", "nhiều … nhất"); else the smaller
    word: str  # the comparative, for the answer: as written ("thấp hơn"), else "cao hơn" / "thấp hơn"
    which: bool  # the place is asked ("tỉnh nào", "… hay …"), not the value
    base: str  # the question without its places and comparison words, asked of each place ("có tỷ lệ hộ nghèo …")


@dataclass(frozen=True)
class Query:
    """A question and what `rag.query.analyse` understood of it (its one constructor outside tests: the fields
    after `subplace` are what the answerer reads, and keep their defaults in a Query built by hand)."""

    text: str  # as typed, NFC
    normalized: str  # cleaned, abbreviations expanded
    folded: bool  # typed without diacritics
    years: tuple[int, ...] = ()
    place: str | None = None  # canonical province name
    expects: str | None = None  # percent | count | money | person | date | place | entity | code | number
    head: str | None = None  # for "entity": the noun asked about ("công ty" in "công ty nào")
    places: tuple[str, ...] = ()  # every province named, in order ("Hòa Bình hay Thừa Thiên Huế")
    subplace: str | None = None  # a district or ward named instead of the province ("Cửa Lò")
    folded_text: str = ""  # `text` folded: lowercase, no diacritics ("ty le ho ngheo hue 2023")
    folded_words: tuple[str, ...] = ()  # the folded syllables of `normalized` (expansions included), in order
    numbers: frozenset[str] = frozenset()  # the numbers the question states, years left out ("9,2")
    english: bool = False  # asked in English (two or more English function words)
    time_words: frozenset[str] = frozenset()  # its time expressions' words, folded: "cuối năm 2022" → cuoi, nam, 2022
    unit: str = ""  # the thing counted, folded: "bao nhiêu vị trí việc làm" → "vi tri viec lam"
    measure: tuple[str, ...] = ()  # what a rate is of, folded, place words left out: "tỷ lệ hộ nghèo Huế" → ho, ngheo
    verb: str = ""  # the change or level asked, folded: "giảm bao nhiêu" → "giam"; "còn bao nhiêu" → "con"
    wants_target: bool = False  # a target or plan is asked ("mục tiêu", "kế hoạch"), not the result
    title: str = ""  # the office in a "who" question, folded: "pho chu tich", "giam doc"
    organ: str | None = None  # whose office that title is: "ubnd" (People's Committee), "hdnd" (Council), or unsaid
    wants_name: bool = False  # a name is asked ("tên là gì", or a title): an office without its holder does not answer
    asks_document: bool = False  # the date of a document is asked ("ban hành", "ký", "hiệu lực")
    comparison: Comparison | None = None  # it compares two or more of its places ("cao hơn, Hòa Bình hay Huế")


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int = 0
    source: str = ""  # the document's source path
    signals: tuple[tuple[str, float], ...] = ()  # per-path scores, for debugging and reranking
