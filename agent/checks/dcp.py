"""Reading a torch.distributed.checkpoint ``.metadata`` file without running pickled code.

torch writes ``.metadata`` with ``pickle`` and reads it back with ``pickle.load`` (no safe
reader). Here it is read, inside the confined child (agent.checks.child), by an unpickler that
can build nothing but DCP's own metadata classes, torch sizes, dtypes and layouts, and paths:
any other global, the kind a hostile file needs to run code, is refused before it is looked up.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from agent.checks.values import Failed
from agent.rules.manifest import is_safe_relative

_META = "torch.distributed.checkpoint.metadata"
ALLOWED = {
    *(
        (_META, name)
        for name in (
            "Metadata",
            "MetadataIndex",
            "TensorStorageMetadata",
            "BytesStorageMetadata",
            "ChunkStorageMetadata",
            "TensorProperties",
            "StorageMeta",
            "_MEM_FORMAT_ENCODING",
        )
    ),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("collections", "OrderedDict"),
}
MAX_BYTES = 256 * 1024 * 1024  # a metadata file this large is not one torch wrote


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import torch

        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise Failed(
            f"needs {module}.{name}, which a DCP metadata file never holds; refused, nothing "
            "in it was run"
        )


def read_dcp_metadata(path: Path) -> dict[str, Any]:
    """{"format": "dcp", "tensors": {fqn: [dtype, shape]}, "referenced": [relative paths]}, or
    Failed saying why the file is not a DCP metadata file we can trust."""
    from torch.distributed.checkpoint.metadata import Metadata, TensorStorageMetadata

    if path.stat().st_size > MAX_BYTES:
        raise Failed(f"{path.stat().st_size} bytes: too large for a DCP metadata file")
    with open(path, "rb") as fh:
        try:
            md = _Restricted(fh).load()
        except Failed:
            raise
        except Exception as exc:  # any unpickling error means a damaged file
            raise Failed(
                f"not a readable DCP metadata file ({type(exc).__name__}: {exc})"
            ) from None
    if not isinstance(md, Metadata) or not isinstance(md.state_dict_metadata, dict):
        raise Failed("not a torch.distributed.checkpoint Metadata object")
    tensors = {
        str(fqn): [str(item.properties.dtype).removeprefix("torch."), list(item.size)]
        for fqn, item in md.state_dict_metadata.items()
        if isinstance(item, TensorStorageMetadata)
    }
    referenced = set()
    for info in (md.storage_data or {}).values():
        rel = getattr(info, "relative_path", None)
        if not isinstance(rel, str) or not is_safe_relative(rel):
            raise Failed(f"references {rel!r}, which is not a file inside the checkpoint")
        referenced.add(rel)
    if md.state_dict_metadata and not referenced:
        raise Failed("names tensors but no file that holds them")
    return {"format": "dcp", "tensors": tensors, "referenced": sorted(referenced)}
