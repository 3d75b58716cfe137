"""Shared fixtures: the network is blocked, the hub is offline, slow tests are opt-in."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("RAG_EMBED_MODEL", None)
os.environ.pop("RAG_INDEX_DIR", None)
for _var in ("RAG_LLM_URL", "RAG_LLM_MODEL", "RAG_LLM_PROVIDER", "RAG_LLM_API_KEY"):  # no LLM unless a test sets one
    os.environ.pop(_var, None)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("RAG_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: use --runslow or RAG_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class _BlockedSocket(socket.socket):
    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")):
            return super().connect(address)
        if self.family == socket.AF_UNIX:
            return super().connect(address)
        raise OSError(f"network access blocked in tests: {address!r}")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Only loopback connections are allowed."""
    monkeypatch.setattr(socket, "socket", _BlockedSocket)
    yield


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    """A private copy of seeds/ that a test may change."""
    dest = tmp_path / "seeds"
    shutil.copytree(SEEDS, dest)
    return dest


@pytest.fixture
def seeds_repo(tmp_path) -> Path:
    """A folder `repo` whose `seeds/` holds a copy of the seed documents (for `cd repo && rag index seeds`)."""
    repo = tmp_path / "repo"
    (repo / "seeds").mkdir(parents=True)
    for path in SEEDS.glob("*.txt"):
        (repo / "seeds" / path.name).write_bytes(path.read_bytes())
    return repo


@pytest.fixture(scope="session")
def seeds_index(tmp_path_factory) -> Path:
    """A lexical+hashing-dense index of the seeds, built once per session (read-only)."""
    from rag.api import RAG

    index_dir = tmp_path_factory.mktemp("seeds-index")
    RAG.build([SEEDS], index_dir, model="hashing")
    return index_dir
