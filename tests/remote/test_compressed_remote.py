"""Remotes with ``compression: zstd`` through the real CLI, on every backend: versions are
stored as ``.zst`` objects whose catalog entry records both identities, a pull onto an empty
machine brings them back, a switched setting leaves old objects readable, and local compressed
versions go to a plain remote as plain files."""

from __future__ import annotations

import hashlib
import shutil

import yaml

from agent.remote import catalog as remote_catalog
from providers import open_provider
from tests.local.test_compression import write_dtype_checkpoint, zstd_cli_decompress
from tests.support import MODEL, MODEL_FILE, SyncProject

OLD, NEW = "2026-11-01", "2026-11-10"


def set_compression(proj: SyncProject, *, remote: str | None, local: str | None = None) -> None:
    doc = yaml.safe_load(proj.config.read_text())
    block = doc["MODEL_SAFETY"]
    if remote:
        block["remotes"]["r"]["compression"] = remote
    else:
        block["remotes"]["r"].pop("compression", None)
    if local:
        block["compression"] = local
        block["compress_after_days"] = 0
    proj.config.write_text(yaml.safe_dump(doc, sort_keys=False))


def remote_state(proj: SyncProject, tmp_path) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Every object's bytes and the remote catalog's entries, read straight from the backend."""
    provider = open_provider("check", dict(proj.remote), state_dir=tmp_path / "check-state")
    try:
        objects = {}
        for info in provider.list(""):
            if not info.key.startswith(".model-safety/"):
                objects[info.key] = b"".join(provider.capabilities.iter_bytes(info.key))
        return objects, remote_catalog.load(provider).files
    finally:
        provider.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_zstd_remote_stores_versions_compressed_and_pulls_them_back(sync_project, ms, tmp_path):
    proj = sync_project
    set_compression(proj, remote="zstd")
    model = write_dtype_checkpoint(proj.models / MODEL_FILE, "bfloat16", seed=1)
    result = ms(proj.root, "run", "--today", OLD)  # auto_push: the version goes up
    assert result.code == 0, result.out + result.err
    objects, entries = remote_state(proj, tmp_path)
    zst = f"{MODEL}_v{OLD}.pth.zst"
    assert zst in objects and f"{MODEL}_v{OLD}.pth" not in objects
    assert objects[MODEL_FILE] == model  # the current file stays plain
    entry = entries[zst]
    assert (entry["codec"], entry["size"], entry["sha256"]) == ("zstd", len(model), sha(model))
    assert (entry["stored_size"], entry["stored_sha256"]) == (len(objects[zst]), sha(objects[zst]))
    (tmp_path / "zst").write_bytes(objects[zst])
    assert zstd_cli_decompress(tmp_path / "zst", tmp_path / "by-hand.pth") == model
    deep = ms(proj.root, "verify", "--remote", "r", "--deep")
    assert deep.code == 0, deep.out + deep.err
    again = ms(proj.root, "push")
    assert again.code == 0 and "0 file(s)" in again.out, again.out
    # the disk died: pull onto an empty machine
    shutil.rmtree(proj.models)
    pulled = ms(proj.root, "pull", "--version", "all")
    assert pulled.code == 0, pulled.out + pulled.err
    assert (proj.models / MODEL_FILE).read_bytes() == model
    assert (proj.models / zst).read_bytes() == objects[zst]
    assert ms(proj.root, "verify").code == 0
    restored = ms(proj.root, "restore", "--from", zst, "--yes")
    assert restored.code == 0, restored.err
    assert (proj.models / MODEL_FILE).read_bytes() == model


def test_switching_a_remote_keeps_old_objects_and_sends_new_ones_compressed(
    tmp_path, local_settings, ms
):
    proj = SyncProject.create(tmp_path / "proj", local_settings)
    proj.write_model(seed=0)  # models dir and tokenizer
    write_dtype_checkpoint(proj.models / MODEL_FILE, "float16", seed=1)
    assert ms(proj.root, "run", "--today", OLD).code == 0  # plain remote
    set_compression(proj, remote="zstd")
    newer = write_dtype_checkpoint(proj.models / MODEL_FILE, "float16", seed=2)
    assert ms(proj.root, "run", "--today", NEW).code == 0
    objects, entries = remote_state(proj, tmp_path)
    versions = sorted(n for n in objects if "_v" in n and not n.startswith("tokenizer"))
    assert versions == [f"{MODEL}_v{OLD}.pth", f"{MODEL}_v{NEW}.pth.zst"]
    assert entries[f"{MODEL}_v{NEW}.pth.zst"]["sha256"] == sha(newer)
    assert "0 file(s)" in ms(proj.root, "push").out
    set_compression(proj, remote=None)  # and back: nothing is sent again either
    assert "0 file(s)" in ms(proj.root, "push").out
    assert ms(proj.root, "verify", "--remote", "r", "--deep").code == 0
    shutil.rmtree(proj.models)
    assert ms(proj.root, "pull", "--version", "all").code == 0
    assert ms(proj.root, "verify").code == 0


def test_local_compressed_versions_reach_a_plain_remote_as_plain_files(
    tmp_path, local_settings, ms
):
    proj = SyncProject.create(tmp_path / "proj", local_settings, auto_push=False)
    proj.write_model(seed=0)
    set_compression(proj, remote=None, local="zstd")
    model = write_dtype_checkpoint(proj.models / MODEL_FILE, "float32", seed=1)
    assert ms(proj.root, "run", "--today", OLD).code == 0
    assert (proj.models / f"{MODEL}_v{OLD}.pth.zst").is_file()
    pushed = ms(proj.root, "push")
    assert pushed.code == 0, pushed.out + pushed.err
    objects, entries = remote_state(proj, tmp_path)
    assert objects[f"{MODEL}_v{OLD}.pth"] == model
    assert "codec" not in entries[f"{MODEL}_v{OLD}.pth"]
    assert not list((proj.models / ".model-safety").glob(".*.incomplete"))
    # local retention counts it as mirrored: prune without --force may delete it
    status = ms(proj.root, "prune", "--dry-run")
    assert "not on any remote yet" not in status.out, status.out


def test_deep_verify_decompresses_a_zst_object(tmp_path, local_settings, ms):
    """The object's own sha256 can match while the model bytes in it are not the ones recorded
    (a catalog entry written for other content): --deep decompresses and says so."""
    import json
    from pathlib import Path

    settings = {**local_settings, "compression": "zstd"}
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.write_model(seed=1)
    assert ms(proj.root, "run", "--today", OLD).code == 0
    assert ms(proj.root, "verify", "--remote", "r", "--deep").code == 0
    catalog_path = Path(settings["path"]) / ".model-safety" / "catalog.json"
    doc = json.loads(catalog_path.read_text())
    zst = f"{MODEL}_v{OLD}.pth.zst"
    doc["files"][zst]["sha256"] = "0" * 64
    catalog_path.write_text(json.dumps(doc))
    shallow = ms(proj.root, "verify", "--remote", "r")
    assert shallow.code == 0  # the object matches its own recorded sha256
    deep = ms(proj.root, "verify", "--remote", "r", "--deep")
    assert deep.code == 3
    assert "does not decompress to its recorded model sha256" in deep.out + deep.err
