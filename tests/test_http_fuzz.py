"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (Hypothesis, in-process).

Every /api operation the schema lists is called with requests drawn from the schema (valid bodies,
parameters and uploads) and mutated from it (wrong types, out-of-range numbers, extra fields, lone
surrogates, arbitrary JSON, raw bytes). Whatever comes in: never a 5xx, and every error is a JSON
`{"error": "…"}`. A few hundred cases by default (RAG_PROPERTY_SCALE=10 for a longer hunt); no
example database is written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rag.api import RAG
from rag.server import create_app

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SCALE = float(os.environ.get("RAG_PROPERTY_SCALE", "1"))
CASES = settings(max_examples=max(1, int(300 * SCALE)), deadline=None, database=None, derandomize=SCALE == 1,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app_and_schema(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(SEEDS, root / "seeds")
    rag, _ = RAG.build([root / "seeds"], root / "index", model="none")
    app = create_app(rag=rag, token="", ui=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, app.openapi(), sorted(rag.documents)


# ---------------------------------------------------------------- strategies from the schema

VIETNAMESE = st.sampled_from(["Tỷ lệ hộ nghèo Huế 2023?", "ty le ho ngheo hue 2023", "XKLĐ Nghệ An 2023", "Hòa Bình",
                              "Thừa Thiên Huế", "hộ nghèo", "  ", "", "\u200b", "a\x00b", "h\ud800", "x" * 2001])
ANY_TEXT = st.one_of(VIETNAMESE, st.text(max_size=40),
                     st.text(st.characters(codec=None, exclude_categories=()), max_size=12))  # lone surrogates too
PATH_TEXT = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=30), VIETNAMESE.filter(
    lambda s: "\ud800" not in s))
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=8)


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


GOOD_TEXT = st.sampled_from(["Tỷ lệ hộ nghèo Huế 2023?", "ty le ho ngheo hue 2023", "XKLĐ Nghệ An 2023",
                             "Số hộ nuôi ong ở Quảng Trị năm 2023?", "Thừa Thiên Huế"])


def from_schema(schema: dict, spec: dict, strict: bool = False) -> st.SearchStrategy:
    """Values the schema allows, and (unless `strict`) values just beside it (out of range, odd text)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, spec, strict) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        examples = [st.sampled_from(schema["examples"])] if schema.get("examples") else []
        return st.one_of(*examples, GOOD_TEXT) if strict else st.one_of(*examples, VIETNAMESE, ANY_TEXT)
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        inside = st.integers(int(low) if low is not None else None, int(high) if high is not None else None)
        if strict:
            return inside
        edges = [int(v) + d for v in (low, high) if v is not None for d in (-1, 0, 1)]
        return st.one_of(inside, st.sampled_from(edges) if edges else st.nothing(), st.integers())
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "object":
        props = schema.get("properties", {})
        required = {k: from_schema(v, spec, strict) for k, v in props.items() if k in schema.get("required", [])}
        optional = {k: from_schema(v, spec, strict) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), spec, strict), max_size=3)
    return ANY_JSON


def mutated(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly what the schema says; sometimes with an extra field, a wrong type, or anything at all."""
    def with_extra(obj):
        return st.builds(lambda k, v: {**obj, k: v}, ANY_TEXT, ANY_JSON) if isinstance(obj, dict) else st.just(obj)

    return st.one_of(valid, valid, valid.flatmap(with_extra), ANY_JSON)


def json_body(schema: dict, spec: dict) -> st.SearchStrategy:
    """(content bytes, content type): JSON text (ASCII-escaped, so lone surrogates survive) or raw bytes."""
    as_json = st.one_of(from_schema(schema, spec, strict=True), mutated(from_schema(schema, spec))).map(
        lambda v: (json.dumps(v).encode(), "application/json"))
    raw = st.tuples(st.binary(max_size=64), st.sampled_from(["application/json", "text/plain", ""]))
    return st.one_of(as_json, as_json, as_json, raw)


UPLOAD_DATA = st.sampled_from([
    "Báo cáo nuôi ong Quảng Trị năm 2023.\nSố hộ nuôi ong ở Quảng Trị năm 2023 là 321 hộ.\n".encode(),
    "Tin nhanh: năm 2023 tỉnh Nghệ An đưa 17.034 người đi làm việc ở nước ngoài.\n".encode(),
    b"", b"   \n", b"\x00\x01\x02binary", b"%PDF-1.4 not really", b"PK\x03\x04 not a zip",
    b"<html><body><p>Tin Hu\xc3\xa1\xba\xbf 2023</p></body></html>",
])
FILE_NAMES = st.one_of(
    st.sampled_from(["bao cao.txt", "Báo cáo (2023).md", "tin-nuoi-ong.html", "ong.txt"]),
    st.builds(lambda stem, ext: stem + ext, st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
              st.sampled_from([".txt", ".md", ".html", ".pdf", ".docx", ".exe", ""])),
    st.sampled_from(["../x.txt", "C:\\tmp\\evil.txt", "ệ" * 80 + ".txt", ".env.txt", "a/b.txt"]))


@st.composite
def requests(draw, spec: dict, doc_ids: list[str]):
    """One request for one /api operation of the schema: (method, url, content, headers, files)."""
    operations = [(path, method, op) for path, ops in spec["paths"].items() if path.startswith("/api/")
                  for method, op in ops.items()]
    path, method, op = draw(st.sampled_from(operations))
    query = {}
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(st.one_of(st.sampled_from(doc_ids), PATH_TEXT))
            path = path.replace("{" + param["name"] + "}", quote(value, safe="") or "%20")
        elif param["in"] == "query" and draw(st.booleans()):
            value = draw(st.one_of(from_schema(param["schema"], spec), PATH_TEXT))
            query[param["name"]] = "" if value is None else str(value)
    url = path + ("?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items()) if query else "")
    content = headers = files = None
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        content, kind = draw(json_body(body["application/json"]["schema"], spec))
        headers = {"content-type": kind} if kind else {}
    elif "multipart/form-data" in body:
        field = draw(st.sampled_from(["file", "file", "file", "other"]))
        files = {field: (draw(FILE_NAMES), draw(UPLOAD_DATA), "application/octet-stream")}
    return method.upper(), url, content, headers, files


# ---------------------------------------------------------------- the property


def test_every_api_operation_is_fuzzed(app_and_schema):
    _, spec, _ = app_and_schema
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert {("POST", "/api/ask"), ("POST", "/api/search"), ("POST", "/api/documents"),
            ("DELETE", "/api/documents/{doc_id}"), ("GET", "/api/documents/{doc_id}/text")} <= operations


@CASES
@given(data=st.data())
def test_no_request_gets_a_5xx_and_every_error_is_json(app_and_schema, data):
    client, spec, doc_ids = app_and_schema
    method, url, content, headers, files = data.draw(requests(spec, doc_ids), label="request")
    response = client.request(method, url, content=content, headers=headers, files=files)
    event(f"{method} {url.split('?')[0] if '/documents/' not in url else '/api/documents/…'} → {response.status_code}")
    assert response.status_code < 500, (method, url, response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), body
        assert "Traceback" not in response.text
    elif response.headers.get("content-type", "").startswith("application/json"):
        response.json()
