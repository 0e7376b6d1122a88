"""The checker's verdict on a directory model (a Hugging Face ``save_pretrained`` folder, a
torch.distributed.checkpoint): every checkpoint file in it judged by the one checker
(``verdicts.verdict_for``: the confined child, by content), then what ties the files together
(``agent.checks.shards``: the safetensors index, the DCP ``.metadata``).

Files that are not checkpoints (``config.json``, tokenizer files) are carried and checksummed
by the manifest, not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from agent.checks.runner import Verdict
from agent.checks.verdicts import CHECKPOINT_SUFFIXES, verdict_for
from agent.rules.manifest import identity as manifest_identity

if TYPE_CHECKING:
    from agent.local.store import Store


@dataclass(frozen=True)
class TreeVerdict:
    ok: bool
    reason: str | None = None  # why it failed, naming the file
    failed_check: str | None = None
    tensors: dict[str, list[Any]] = field(default_factory=dict)  # across shards: [dtype, shape]
    checked: tuple[str, ...] = ()  # what was checked, for a person (the report says so)


def checkpoint_files(files: Mapping[str, tuple[int, str]]) -> list[str]:
    return sorted(p for p in files if PurePosixPath(p).suffix.lower() in CHECKPOINT_SUFFIXES)


def check_tree(store: Store, root: Path, files: Mapping[str, tuple[int, str]]) -> TreeVerdict:
    """The verdict on directory ``root`` whose manifest is ``files``."""
    from agent.checks.shards import check_links

    tensors: dict[str, list[Any]] = {}
    per_file: dict[str, dict[str, list[Any]]] = {}
    judged = checkpoint_files(files)
    non_finite: TreeVerdict | None = None  # kept to the end: the structure is still compared
    for rel in judged:
        path = root / rel
        verdict = verdict_for(store, path, files[rel][1], safetensors=path.suffix == ".safetensors")
        if not verdict.ok and verdict.failed_check != "finite":
            return TreeVerdict(False, f"{rel}: {verdict.reason}", verdict.failed_check)
        if not verdict.ok and non_finite is None:
            non_finite = TreeVerdict(False, f"{rel}: {verdict.reason}", verdict.failed_check)
        per_file[rel] = verdict.tensors
        for name, sig in verdict.tensors.items():
            tensors.setdefault(name, sig)
    if non_finite is not None:
        return TreeVerdict(False, non_finite.reason, "finite", tensors)
    checked = [f"{len(judged)} checkpoint file(s) load safely and hold finite values"]
    links = check_links(root, files, per_file)
    if links.problem:
        return TreeVerdict(
            False, links.problem, "loads_safely", tensors, (*checked, *links.checked)
        )
    others = len(files) - len(judged)
    checked.extend(links.checked)
    if others:
        checked.append(f"{others} other file(s) carried and checksummed")
    return TreeVerdict(True, None, None, links.tensors or tensors, tuple(checked))


def tree_sha256(store: Store, path: Path) -> str:
    """A directory's manifest identity: from the hash cache inside models_dir, fresh elsewhere."""
    inside = path.resolve().parent == store.models_dir.resolve()
    return manifest_identity(store.manifest(path, fresh=not inside))


def as_verdict(store: Store, path: Path) -> Verdict:
    """``check_tree`` on a directory, as the Verdict a file gets (``validate`` compares them):
    format ``dcp`` when its values are not read (the report says what was checked)."""
    files = store.manifest(path, fresh=path.resolve().parent != store.models_dir.resolve())
    tree = check_tree(store, path, files)
    dcp_only = any(p.endswith(".distcp") for p in files) and not checkpoint_files(files)
    return Verdict(
        tree.ok,
        tree.reason,
        tree.failed_check,
        "dcp" if dcp_only else "directory",
        tree.tensors,
        checked=tree.checked,
    )
