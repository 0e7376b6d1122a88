"""What ties the files of a directory model together, checked once each file passed the checker.

- **Sharded safetensors** (``model.safetensors.index.json`` beside ``model-0000K-of-0000N``
  shards): the index parses; every shard it names is in the directory; every tensor its
  ``weight_map`` names is in the shard it names, as the safetensors library read that shard in
  the confined child (the shard's verdict: this module never parses a shard's header itself);
  ``metadata.total_size``, when given, equals the bytes of the tensors the shards hold.
- **torch.distributed.checkpoint** (``.metadata`` beside ``__R_N.distcp`` files): ``.metadata``
  is read in the confined child by a restricted unpickler that builds only DCP's own metadata
  classes (``agent.checks.dcp``), and every file it references is in the directory. The values
  in ``.distcp`` files are not read: the result says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INDEX_SUFFIX = ".safetensors.index.json"
DCP_METADATA = ".metadata"

# bytes per element of the dtypes torch reports (str(dtype) without "torch.")
DTYPE_BYTES = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "bool": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "complex64": 8,
    "complex128": 16,
}


@dataclass
class Links:
    problem: str | None = None
    checked: list[str] = field(default_factory=list)
    tensors: dict[str, list[Any]] = field(default_factory=dict)


def _nbytes(sig: list[Any]) -> int | None:
    dtype, shape = sig
    size = DTYPE_BYTES.get(str(dtype))
    if size is None:
        return None
    for dim in shape:
        size *= int(dim)
    return size


def check_index(
    index_rel: str, text: str, files: Mapping[str, Any], per_file: Mapping[str, dict[str, Any]]
) -> Links:
    """The index ``index_rel`` (its text) against the shards' verdicts. Pure."""
    links = Links()
    base = index_rel.rsplit("/", 1)[0] + "/" if "/" in index_rel else ""
    try:
        doc = json.loads(text)
        weight_map = doc["weight_map"]
        if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
        ):
            raise TypeError("weight_map is not a mapping of tensor names to shard files")
    except (ValueError, KeyError, TypeError) as exc:
        links.problem = f"{index_rel}: not a valid safetensors index ({exc})"
        return links
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        rel = base + shard
        if rel not in files:
            links.problem = f"{index_rel} names shard {shard}, which is not in the directory"
            return links
        if rel not in per_file:
            links.problem = f"{index_rel} names {shard}, which is not a safetensors file"
            return links
    for tensor, shard in sorted(weight_map.items()):
        held = per_file[base + shard]
        if tensor not in held:
            links.problem = f"{index_rel} maps tensor {tensor} to {shard}, which does not hold it"
            return links
        links.tensors[tensor] = held[tensor]
    links.checked.append(
        f"{index_rel}: {len(weight_map)} tensor(s) each found in the shard it names "
        f"({len(shards)} shard(s))"
    )
    total = (doc.get("metadata") or {}).get("total_size") if isinstance(doc, dict) else None
    if total is not None:
        sizes = [_nbytes(held) for s in shards for held in per_file[base + s].values()]
        if None not in sizes:
            actual = sum(s for s in sizes if s is not None)
            if int(total) != actual:
                links.problem = (
                    f"{index_rel}: metadata.total_size is {total} but the shards hold "
                    f"{actual} bytes of tensors"
                )
                return links
            links.checked.append(f"{index_rel}: metadata.total_size matches the shards")
    return links


def check_links(
    root: Path, files: Mapping[str, Any], per_file: Mapping[str, dict[str, Any]]
) -> Links:
    """Every index and DCP metadata file in directory ``root`` against the files beside it."""
    links = Links()
    for rel in sorted(files):
        if rel.endswith(INDEX_SUFFIX):
            try:
                text = (root / rel).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                return Links(f"{rel}: unreadable ({exc})", links.checked)
            found = check_index(rel, text, files, per_file)
        elif rel == DCP_METADATA or rel.endswith("/" + DCP_METADATA):
            found = check_dcp(root, rel, files)
        else:
            continue
        links.checked.extend(found.checked)
        links.tensors.update(found.tensors)
        if found.problem:
            links.problem = found.problem
            return links
    if any(r.endswith(".distcp") for r in files) and not any(
        r == DCP_METADATA or r.endswith("/" + DCP_METADATA) for r in files
    ):
        links.problem = "torch.distributed.checkpoint files without their .metadata file"
    return links


def check_dcp(root: Path, rel: str, files: Mapping[str, Any]) -> Links:
    """``.metadata`` read in the confined child; every file it references present."""
    from agent.checks.runner import check_dcp_metadata

    links = Links()
    result = check_dcp_metadata(root / rel)
    if not result.ok:
        links.problem = f"{rel}: {result.reason}"
        return links
    base = rel[: -len(DCP_METADATA)]
    for ref in result.referenced:
        if base + ref not in files:
            links.problem = f"{rel} references {ref}, which is not in the directory"
            return links
    links.tensors.update(result.tensors)
    links.checked.append(
        f"{rel}: read without running pickled code; {len(result.tensors)} tensor(s) in "
        f"{len(result.referenced)} referenced file(s), all present; the values in .distcp "
        "files are not read (no safe loader for them)"
    )
    return links


def missing_parts(root: Path) -> str | None:
    """A cheap look at a current directory without the checker: a shard its safetensors index
    names that is not there, or an index that does not parse."""
    for index in sorted(root.rglob("*" + INDEX_SUFFIX)):
        rel = index.relative_to(root).as_posix()
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return f"{rel}: not a valid safetensors index ({exc})"
        for shard in shards:
            if not (index.parent / str(shard)).is_file():
                return f"{rel} names shard {shard}, which is not in the directory"
    return None
