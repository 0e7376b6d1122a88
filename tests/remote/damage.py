"""Damage done to remote objects behind the agent's back, the way bit rot or a careless hand
would: each helper works on the server directly, never through the agent or its providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def flip_remote_object(request, kind, settings, name) -> None:
    """Damage one remote object the way bit rot or a careless hand would, behind the agent."""
    if kind == "local":
        path = Path(settings["path"]) / name
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
    elif kind == "s3_seaweedfs":
        server = request.getfixturevalue("seaweedfs")
        client = server.client()
        key = f"{settings['prefix'].rstrip('/')}/{name}"
        obj = client.get_object(Bucket=settings["bucket"], Key=key)
        data = bytearray(obj["Body"].read())
        data[100] ^= 0xFF
        # same size, same metadata (the recorded sha256 now lies about the bytes)
        client.put_object(
            Bucket=settings["bucket"], Key=key, Body=bytes(data), Metadata=obj["Metadata"]
        )
    else:
        emulator = request.getfixturevalue("drive_emulator")
        emulator.flip_byte(settings["folder_id"], name, 100)


def remote_bytes(request: Any, kind: str, settings: dict[str, Any], name: str) -> bytes:
    """The bytes a remote object holds, read from the server directly."""
    if kind == "local":
        return (Path(settings["path"]) / name).read_bytes()
    if kind.startswith("s3"):
        server = request.getfixturevalue("seaweedfs")
        key = f"{settings['prefix'].rstrip('/')}/{name}"
        return server.client().get_object(Bucket=settings["bucket"], Key=key)["Body"].read()
    emulator = request.getfixturevalue("drive_emulator")
    (f,) = [x for x in emulator.files_in(settings["folder_id"]) if x.title == name]
    return bytes(f.data)
