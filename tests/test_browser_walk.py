"""The chat walked in a real headless Chromium, as a user would: ask → follow-up → reload → history →
upload with progress → ask about it → remove with confirmation; no English shown at any step.

The same walk as `python -m rag.screenshots docs/screenshots`, its screenshots in a temporary folder
(a test run changes no tracked file). Skipped without /usr/bin/chromium, except in CI (CI=true).
"""

from __future__ import annotations

import os

import pytest

from rag.screenshots import CHROMIUM, QUESTION, UPLOAD_ANSWER, serve_and_walk


@pytest.mark.slow  # ~60 s on 2 cores
def test_the_walk_in_a_browser(tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium — required in CI")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    shots = tmp_path / "shots"
    report = serve_and_walk(shots, model="hashing", work_dir=tmp_path)

    assert "2,27%" in report.answers["ask"]
    assert UPLOAD_ANSWER in report.answers["uploaded"]
    assert {s.name for s in report.shots} >= {"01-hoi.png", "02-hoi-tiep.png", "03-tai-lai-trang.png",
                                               "04-mo-lich-su.png", "06-tai-len-xong.png",
                                               "07-hoi-tai-lieu-moi.png", "08-xac-nhan-xoa.png", "09-da-xoa.png"}
    assert all(s.parent == shots and s.stat().st_size > 10_000 for s in report.shots)
    # no English, at any step (visible text, aria-labels, titles, placeholders)
    assert {step: texts for step, texts in report.english.items() if texts} == {}
    # screen readers get the messages' text, not their HTML
    labels = [label for label in report.aria_labels if label.startswith(("Bạn hỏi:", "Trợ lý:"))]
    assert any(label.startswith(f"Bạn hỏi: {QUESTION}") for label in labels)
    assert any("2,27%" in label for label in labels if label.startswith("Trợ lý:"))
    assert not any("<" in label or "message:" in label for label in report.aria_labels)
    # the upload showed its steps in Vietnamese, then "sẵn sàng"
    ours = [s for s in report.progress if "bao cao nuoi ong" in s]
    assert ours and "sẵn sàng" in ours[-1] and "✓" in ours[-1]
    assert any(s.startswith("bao cao nuoi ong") and ": đang " in s for s in ours[:-1]), report.progress
