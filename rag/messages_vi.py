"""The user-facing errors in Vietnamese, worded from their `code` and `params` (rag/errors.py), never
from the English sentence. An error without a code (or with one not listed here) gets its class's
sentence."""

from __future__ import annotations

from .errors import IndexCorrupt, IndexLocked, IndexNotFound, RagError, TooLarge, UsageError

WHAT = {"question": "Câu hỏi", "query": "Câu tìm kiếm", "province": "Tên tỉnh/thành", "title": "Tên hội thoại"}

MESSAGES = {
    "text_not_string": "{what} phải là văn bản.",
    "text_not_unicode": "{what} chứa ký tự không hợp lệ (không phải văn bản Unicode).",
    "text_empty": "{what} đang trống.",
    "text_too_long": "{what} quá dài ({chars} ký tự; tối đa {limit}).",
    "text_control": "{what} chứa ký tự điều khiển.",
    "name_missing": "Tệp tải lên không có tên.",
    "name_path": "Tên tệp phải là một tên đơn giản, không phải đường dẫn.",
    "name_too_long": "Tên tệp quá dài ({size} byte; tối đa {limit}); hãy đặt tên ngắn hơn.",
    "name_characters": "Tên tệp chứa ký tự không được phép (chỉ dùng chữ, số, dấu cách, - _ . ( )).",
    "file_type": "{name}: loại tệp không được hỗ trợ (chỉ nhận {types}).",
    "file_too_large": "{name} lớn hơn {mb} MB.",
    "file_too_much_text": "{name} chứa quá nhiều văn bản (hơn {limit} ký tự); hãy chia thành các tệp nhỏ hơn.",
    "file_too_slow": "{name} cần hơn {seconds} giây để đọc; hãy chia thành các tệp nhỏ hơn.",
    "file_too_many_pages": "{name} có quá nhiều trang (tối đa {limit}); hãy chia thành các tệp nhỏ hơn.",
    "file_binary": "{name} là tệp nhị phân, không phải văn bản.",
    "file_encoding": "{name} không phải UTF-8 và không nhận ra được bảng mã.",
    "file_unreadable": "Không đọc được {name} dưới dạng tệp {kind} (tệp hỏng hoặc không đúng định dạng).",
    "file_no_text": "{name} không chứa văn bản nào.",
    "id_conflict": "Đã có tài liệu mã {doc_id} từ tệp khác ({source}); hãy đổi tên tệp hoặc xóa tài liệu đó trước.",
    "index_locked": "Một tiến trình khác đang ghi chỉ mục; vui lòng đợi rồi thử lại.",
    "upload_refused": "Chỉ nhận tệp vừa được tải lên qua trang này; đường dẫn tới tệp khác trên máy chủ bị từ chối.",
    "doc_missing": "Không có tài liệu {doc_id}.",
    "no_file": "Chưa chọn tệp nào.",
}

BY_CLASS = (  # most specific first
    (TooLarge, "Tệp hoặc dữ liệu quá lớn, hoặc quá phức tạp để đọc; hãy chia thành các phần nhỏ hơn."),
    (IndexLocked, MESSAGES["index_locked"]),
    (IndexNotFound, "Chưa có chỉ mục tài liệu; hãy tạo chỉ mục trước (rag index)."),
    (IndexCorrupt, "Chỉ mục tài liệu bị hỏng; hãy tạo lại (rag index --rebuild)."),
    (UsageError, "Dữ liệu nhập không hợp lệ."),
    (RagError, "Có lỗi khi xử lý yêu cầu; vui lòng thử lại."),
)


def message(exc: BaseException) -> str:
    """`exc` in one Vietnamese sentence."""
    code = getattr(exc, "code", None)
    params = dict(getattr(exc, "params", {}) or {})
    params = {k: f"{v:,}".replace(",", ".") if isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in params.items()}  # Vietnamese groups thousands with "."
    if "what" in params:
        params["what"] = WHAT.get(params["what"], WHAT["question"])
    template = MESSAGES.get(code or "")
    if template is not None:
        try:
            return template.format(**params)
        except (KeyError, ValueError, IndexError):
            pass
    for cls, text in BY_CLASS:
        if isinstance(exc, cls):
            return text
    return BY_CLASS[-1][1]


__all__ = ["MESSAGES", "message"]
