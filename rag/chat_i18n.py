"""The chat's Vietnamese: Gradio's own strings (through gr.I18n, the "vi" locale switched on in the
page) and the few that Gradio's front end writes without i18n (replaced in the page by our script).

Also the screen readers' labels: Gradio labels each message "bot's message: <its HTML>"; the script
gives them "Trợ lý: <the text>" instead.
"""

from __future__ import annotations

import json

# Gradio's i18n keys (gradio/templates/frontend/assets/core-*.js, English "en" messages), in Vietnamese
GRADIO_VI = {
    "common": {
        "built_with": "xây dựng bằng", "built_with_gradio": "Xây dựng bằng Gradio", "clear": "Xóa",
        "download": "Tải xuống", "download_all": "Tải xuống tất cả", "edit": "Sửa", "empty": "Trống",
        "error": "Lỗi", "hosted_on": "Lưu trữ trên", "loading": "Đang tải", "logo": "biểu tượng", "or": "hoặc",
        "remove": "Gỡ bỏ", "runs": "Lượt chạy", "runs_description": "Xem các lượt chạy lưu trong trình duyệt này",
        "back_to_app": "Ứng dụng", "back_to_app_description": "Quay lại ứng dụng", "settings": "Cài đặt",
        "share": "Chia sẻ", "submit": "Gửi", "undo": "Hoàn tác", "no_devices": "Không tìm thấy thiết bị",
        "language": "Ngôn ngữ", "display_theme": "Giao diện", "pwa": "Ứng dụng web", "progress": "Tiến độ",
        "record": "Ghi", "stop_recording": "Dừng ghi", "screen_studio": "Quay màn hình", "run": "Chạy",
        "complete": "Xong",  # (Gradio's chatbot asks for common.complete, a key its English lacks)
    },
    "upload_text": {
        "click_to_upload": "Bấm để chọn tệp", "drop_audio": "Thả tệp âm thanh vào đây", "drop_csv": "Thả tệp CSV vào đây",
        "drop_file": "Thả tệp vào đây", "drop_image": "Thả ảnh vào đây", "drop_video": "Thả video vào đây",
        "drop_gallery": "Thả tệp vào đây", "paste_clipboard": "Dán từ bộ nhớ tạm",
    },
    "chatbot": {
        "edit": "Sửa", "retry": "Thử lại", "undo": "Hoàn tác", "submit": "Gửi", "cancel": "Hủy", "like": "Thích",
        "dislike": "Không thích", "clear": "Xóa", "complete": "Xong", "copy_message": "Sao chép tin nhắn",
        "copied_message": "Đã sao chép",
    },
    "chat_interface": {"new_chat": "Cuộc hội thoại mới", "message_placeholder": "Nhập tin nhắn…",
                       "additional_inputs": "Tùy chọn thêm", "chatbot": "Hội thoại", "conversation": "Hội thoại"},
    "file": {"uploading": "Đang tải lên…"},
    "dropdown": {"dropdown": "Danh sách chọn"},
    "status": {"queue_position": "Đang chờ: {position}/{size}"},
    "login": {"enable_cookies": "Hãy bật cookie của bên thứ ba.", "incorrect_credentials": "Sai mật khẩu",
              "username": "tên người dùng", "password": "mật khẩu", "login": "Đăng nhập"},
    "blocks": {
        "connection_can_break": "Trên điện thoại, kết nối có thể ngắt khi thẻ này bị ẩn hoặc máy ngủ.",
        "long_requests_queue": "Đang có nhiều yêu cầu chờ xử lý.",
        "lost_connection": "Mất kết nối vì rời trang. Đang kết nối lại…",
        "waiting_for_inputs": "Đang chờ tải tệp xong, vui lòng thử lại.",
    },
    "errors": {"use_via_api": "Dùng qua API", "use_via_api_or_mcp": "Dùng qua API hoặc MCP"},
}

# what Gradio's front end writes without i18n: exact text → Vietnamese (text, aria-label, title, placeholder).
# Its i18n strings are here too (English → the GRADIO_VI words): a component drawn before the "vi" locale
# took hold keeps its English until redrawn, and this catches it.
HARDCODED_VI = {
    "Drop File Here": "Thả tệp vào đây",
    "- or -": "- hoặc -",
    "Click to Upload": "Bấm để chọn tệp",
    "Paste from Clipboard": "Dán từ bộ nhớ tạm",
    "Uploading...": "Đang tải lên…",
    "Submit": "Gửi",
    "Undo": "Hoàn tác",
    "Retry": "Thử lại",
    "Edit": "Sửa",
    "Cancel": "Hủy",
    "Like": "Thích",
    "Dislike": "Không thích",
    "Settings": "Cài đặt",
    "Download All": "Tải xuống tất cả",
    "chatbot conversation": "hội thoại",
    "Loading response": "Đang tải câu trả lời",
    "Loading content": "Đang tải nội dung",
    "Close": "Đóng",
    "Scroll down": "Cuộn xuống",
    "Feedback": "Phản hồi",
    "processing |": "đang xử lý |",
    "processing": "đang xử lý",
    "Copy": "Sao chép",
    "Copied!": "Đã sao chép",
    "Clear": "Xóa",
    "Download": "Tải xuống",
    "Remove": "Gỡ bỏ",
    "Upload": "Tải lên",
    "Error": "Lỗi",
    "Warning": "Cảnh báo",
    "Info": "Thông tin",
    "Success": "Thành công",
    "Dropdown": "Danh sách chọn",
    "Empty": "Trống",
    "Empty value": "Chưa chọn",
    "Click to upload or drop files": "Bấm để chọn tệp hoặc thả tệp vào đây",
    "File upload": "Tải tệp lên",
    "Textbox": "Ô nhập",
    "Chatbot": "Hội thoại",
    "Loading...": "Đang tải…",
    "Loading": "Đang tải",
    "Copy message": "Sao chép tin nhắn",
    "Copied message": "Đã sao chép",
}

ROLE_VI = {"user": "Bạn hỏi", "bot": "Trợ lý", "assistant": "Trợ lý"}


def i18n():
    """gr.I18n with the Vietnamese strings under "vi" (the locale the page's script switches to)."""
    import gradio as gr

    return gr.I18n(vi=GRADIO_VI)


def head_script() -> str:
    """Our script for the page's <head>: the "vi" locale, the hard-coded strings, the messages' labels."""
    return _SCRIPT.replace("__HARDCODED__", json.dumps(HARDCODED_VI, ensure_ascii=False)).replace(
        "__ROLES__", json.dumps(ROLE_VI, ensure_ascii=False))


_SCRIPT = """<script>
(function () {
  var VI = __HARDCODED__, ROLES = __ROLES__, ATTRS = ['aria-label', 'title', 'placeholder'];
  var MSG = /^(user|bot|assistant)'s message: /;
  function text(el) { return (el.innerText || el.textContent || '').replace(/\\s+/g, ' ').trim(); }
  function fixAttrs(el) {
    for (var i = 0; i < ATTRS.length; i++) {
      var a = ATTRS[i], v = el.getAttribute && el.getAttribute(a);
      if (!v) continue;
      var m = a === 'aria-label' && v.match(MSG);
      if (m) { el.setAttribute('data-rag-role', m[1]); el.setAttribute(a, ROLES[m[1]] + ': ' + text(el).slice(0, 2000)); continue; }
      if (Object.prototype.hasOwnProperty.call(VI, v.trim())) el.setAttribute(a, VI[v.trim()]);
    }
  }
  function fixText(node) {
    var v = node.nodeValue, t = v && v.trim();
    if (t && Object.prototype.hasOwnProperty.call(VI, t)) node.nodeValue = v.replace(t, VI[t]);
    else if (t && /^processing \\|/.test(t)) node.nodeValue = v.replace('processing', 'đang xử lý');
    else if (t && /^queue: /.test(t)) node.nodeValue = v.replace('queue:', 'hàng đợi:');
  }
  function fix(root) {
    if (root.nodeType === 3) { fixText(root); return; }
    if (root.nodeType !== 1) return;
    fixAttrs(root);
    var all = root.querySelectorAll('[aria-label],[title],[placeholder]');
    for (var i = 0; i < all.length; i++) fixAttrs(all[i]);
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT), n;
    while ((n = walker.nextNode())) fixText(n);
  }
  function relabel(el) {  // a message's text changed: its label follows
    for (var p = el; p && p !== document.body; p = p.parentElement) {
      var lab = p.getAttribute && p.getAttribute('data-rag-role');
      if (lab) { p.setAttribute('aria-label', ROLES[lab] + ': ' + text(p).slice(0, 2000)); return; }
    }
  }
  new MutationObserver(function (records) {
    for (var i = 0; i < records.length; i++) {
      var r = records[i];
      if (r.type === 'attributes') {
        var v = r.target.getAttribute(r.attributeName) || '', m = v.match(MSG);
        if (m) r.target.setAttribute('data-rag-role', m[1]);
        fixAttrs(r.target);
      } else if (r.type === 'characterData') { fixText(r.target); relabel(r.target.parentElement); }
      else for (var j = 0; j < r.addedNodes.length; j++) { fix(r.addedNodes[j]); relabel(r.target); }
    }
  }).observe(document.documentElement, {subtree: true, childList: true, characterData: true,
                                        attributes: true, attributeFilter: ATTRS});
  // Gradio's own strings: its i18n (svelte-i18n) shows our "vi" messages (gr.I18n) when its locale store
  // holds "vi"; Gradio sets that store from the browser's language while it starts: we set it back.
  function store(m) {  // the module's export that is svelte-i18n's locale store (a writable holding 'en', 'fr'…)
    for (var k in m) {
      var s = m[k], value;
      if (!s || typeof s.subscribe !== 'function' || typeof s.set !== 'function') continue;
      try { s.subscribe(function (v) { value = v; })(); } catch (e) { continue; }
      if (typeof value === 'string' && /^[a-z]{2,3}(-[A-Za-z]{2,4})?$/.test(value)) return s;
    }
    return null;
  }
  function locale(tries) {
    var runtime = performance.getEntriesByType('resource').map(function (r) { return r.name; })
      .filter(function (n) { return /\/assets\/runtime-[\w-]+\.js$/.test(n); })[0];
    var ready = runtime && document.querySelector('#rag-question');
    if (!ready) { if (tries < 600) setTimeout(function () { locale(tries + 1); }, 50); return; }
    import(runtime).then(function (m) {
      var s = store(m);
      if (!s) return;
      s.subscribe(function (v) { if (v !== 'vi') setTimeout(function () { s.set('vi'); }, 0); });
    });
  }
  document.documentElement.lang = 'vi';
  locale(0);
})();
</script>"""


__all__ = ["GRADIO_VI", "HARDCODED_VI", "head_script", "i18n"]
