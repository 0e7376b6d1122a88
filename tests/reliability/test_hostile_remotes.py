"""Hostile remotes: object names that try to escape ``models_dir``,
a catalog that points outside it, a malicious pickle and a lying safetensors header. Nothing is
written outside ``models_dir``, nothing executes, and each bad name is reported.

Drive is the hostile server here: its titles may hold anything (``/``, ``..``, NUL, 300 bytes,
Windows device names and streams), which S3 keys and local file names cannot all express."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
from pathlib import Path

from agent.rules.naming import identify
from tests.reliability.invariants import snapshot_dir
from tests.support import SyncProject

CATALOG = ".model-safety/catalog.json"


def tree(root: Path, skip: Path) -> dict[str, int]:
    """Every path under ``root`` except inside ``skip``, with its size (dirs: -1)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames:
            out[str(here / name)] = -1
        for name in filenames:
            out[str(here / name)] = (here / name).lstat().st_size
    return out


def hostile_names(escape_dir: Path) -> list[str]:
    return [
        "../dinesh_ai_model.pth",
        "../../escape_v2024-01-01.pth",
        f"{escape_dir}/dinesh_ai_model_v2024-01-08.pth",  # absolute
        "sub/dinesh_ai_model_v2024-01-15.pth",
        "..\\..\\dinesh_ai_model_v2024-01-22.pth",
        "dinesh_ai_model_v2024-01-29.pth\0.sh",
        "\0",
        "..",
        "x" * 300 + "_v2024-02-05.pth",  # longer than any file name may be
        "dinesh_ai_model_v2024-02-12" + "9" * 300 + ".pth",
        # names that are something else on Windows: a device, a trailing dot Windows drops (the
        # good version's name), an alternate data stream of the current model
        "NUL",
        "con.pth",
        "COM1.dinesh_ai_model_v2024-02-19.pth",
        "dinesh_ai_model_v2024-01-01.pth.",
        "dinesh_ai_model.pth:payload",
    ]


def test_hostile_names_and_catalog_write_nothing_outside_models_dir(
    gdrive_emulator_settings, drive_emulator, tmp_path, ms
):
    folder = gdrive_emulator_settings["folder_id"]
    escape = tmp_path / "escape"
    good = SyncProject.create(tmp_path / "good", gdrive_emulator_settings)
    good.write_model(seed=1)
    assert ms(good.root, "backup", "--kind", "version").code == 0
    assert ms(good.root, "push").code == 0
    names = hostile_names(escape)
    for name in names:
        drive_emulator.create_file(name, b"pwned", parent=folder)
    # the catalog lies too: entries outside models_dir, and companions that climb out
    (cat,) = [f for f in drive_emulator.files_in(folder) if f.title == CATALOG]
    doc = json.loads(cat.data)
    version = next(n for n in doc["files"] if "_v" in n and n.endswith(".pth"))
    doc["files"][version]["companions"] = {"tokenizer.json": "../../evil.json"}
    for bad in ("../../outside_v2024-03-01.pth", f"{escape}/abs.pth", "sub/x.pth", "a\0b"):
        doc["files"][bad] = {**doc["files"][version], "name": bad, "companions": {}}
    with drive_emulator.state.lock:  # a hostile server keeps its metadata consistent
        cat.data = json.dumps(doc).encode()
        cat.properties["sha256"] = hashlib.sha256(cat.data).hexdigest()

    fresh = SyncProject.create(tmp_path / "fresh", gdrive_emulator_settings)
    fresh.models.mkdir()
    before = tree(tmp_path, skip=fresh.models)
    runs = {
        "pull": ms(fresh.root, "pull", "--version", "all"),
        "list": ms(fresh.root, "list", "--remote", "r", "--json"),
        "verify": ms(fresh.root, "verify", "--remote", "r"),
        "repair": ms(fresh.root, "repair"),
        "repair (the pushing side)": ms(good.root, "repair"),
    }
    for what, res in runs.items():
        assert res.code in (0, 3), (what, res.err)
    # nothing outside the models dir changed: no new path, no size changed
    after = tree(tmp_path, skip=fresh.models)
    after.pop(str(good.models / ".model-safety" / "lock"), None)
    before.pop(str(good.models / ".model-safety" / "lock"), None)
    assert {k: v for k, v in after.items() if "/good/models/.model-safety" not in k} == {
        k: v for k, v in before.items() if "/good/models/.model-safety" not in k
    }
    assert not escape.exists()
    assert not (tmp_path.parent / "evil.json").exists()
    # inside it: only our names, and what was pulled is the good content
    for path in fresh.models.iterdir():
        assert path.name == ".model-safety" or identify(path.name, fresh_models(fresh)), path
    assert (fresh.models / "dinesh_ai_model.pth").read_bytes() == (
        good.models / "dinesh_ai_model.pth"
    ).read_bytes()
    assert not any(p.read_bytes() == b"pwned" for p in fresh.models.rglob("*") if p.is_file())
    # every hostile object is named in pull's report, and in `list --remote --json`
    skipped = runs["pull"].err
    listed = json.loads(runs["list"].out)["skipped"]
    for name in names:
        assert repr(name) in skipped, name
        assert any(line.startswith(repr(name)) for line in listed), name
    assert "outside_v2024-03-01" not in runs["verify"].out  # not judged as ours either


def fresh_models(proj: SyncProject):  # the configured models of a project, for identify()
    from agent.config import load_config

    return load_config(proj.config).models


class Pwn:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def local_remote(tmp_path: Path) -> tuple[dict, Path]:
    remote_dir = tmp_path / "nas" / "model-backups"
    remote_dir.mkdir(parents=True)
    return {"type": "local", "path": str(remote_dir)}, remote_dir


def test_malicious_pickle_from_a_remote_never_executes(tmp_path, ms):
    import torch

    marker = tmp_path / "PWNED"
    local_settings, remote_dir = local_remote(tmp_path)
    torch.save({"weight": torch.zeros(2), "x": Pwn(marker)}, remote_dir / "dinesh_ai_model.pth")
    assert not marker.exists()
    (remote_dir / "tokenizer.json").write_text("{}")
    proj = SyncProject.create(tmp_path / "proj", local_settings)

    res = ms(proj.root, "pull")
    assert res.code == 0, res
    assert (proj.models / "dinesh_ai_model.pth").exists()
    res = ms(proj.root, "push")
    assert res.code == 3, res
    assert "dinesh_ai_model.pth: not pushed: fails the check" in res.err
    res = ms(proj.root, "validate")
    assert res.code == 3, res
    assert "weights_only" in res.out or "unsafe" in res.out.lower() or "pickle" in res.out.lower()
    assert not marker.exists(), "the pickle's code ran"
    # a plain unpickling really would have run it: the check above can fail
    pickle.loads(pickle.dumps(Pwn(marker)))
    assert marker.exists()


def lying_safetensors(path: Path) -> None:
    """A header that promises a 1000x1000 float32 tensor over an 8-byte body."""
    header = {"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)


def test_lying_safetensors_header_is_reported(tmp_path, ms):
    local_settings, remote_dir = local_remote(tmp_path)
    lying_safetensors(remote_dir / "m.safetensors")
    proj = SyncProject.create(tmp_path / "proj", local_settings)
    proj.write_config(models=[{"name": "m", "file": "m.safetensors"}])
    assert ms(proj.root, "pull").code == 0
    before = snapshot_dir(proj.models)
    res = ms(proj.root, "push")
    assert res.code == 3
    assert "m.safetensors: not pushed: fails the check" in res.err
    res = ms(proj.root, "validate")
    assert res.code == 3 and "m.safetensors" in res.out
    assert snapshot_dir(proj.models) == before  # reported, nothing changed


def test_catalog_failing_its_own_checksum_does_not_block_a_pull(
    ledger, gdrive_emulator_settings, drive_emulator, tmp_path, ms
):
    """The catalog is a convenience, never the truth: one whose bytes no longer match the sha256
    stored with it (bit rot, or a hand edit) is reported and rebuilt, and pull still works."""
    with ledger.case(
        fault="bit flip in the remote catalog of a backend that stores its sha256 (Drive)",
        where="Drive emulator: one byte of .model-safety/catalog.json flipped behind the agent",
        user_sees="a warning that the catalog is damaged; pull exits 0; repair rewrites it",
    ) as case:
        folder = gdrive_emulator_settings["folder_id"]
        good = SyncProject.create(tmp_path / "good", gdrive_emulator_settings)
        good.write_model(seed=4)
        assert ms(good.root, "push").code == 0
        (cat,) = [f for f in drive_emulator.files_in(folder) if f.title == CATALOG]
        drive_emulator.flip_byte(folder, CATALOG, len(cat.data) // 2)

        fresh = SyncProject.create(tmp_path / "fresh", gdrive_emulator_settings)
        res = ms(fresh.root, "pull")
        assert res.code == 0, res
        assert "catalog" in res.err and "damaged" in res.err
        case.transfers_completed += 1
        assert snapshot_dir(fresh.models) == snapshot_dir(good.models)
        res = ms(good.root, "repair")
        assert res.code == 0, res
        (cat,) = [f for f in drive_emulator.files_in(folder) if f.title == CATALOG]
        assert json.loads(cat.data)["files"]
        assert "damaged" not in ms(fresh.root, "verify", "--remote", "r").err
        case.lost_bytes = 0
        case.verified = "pull restored identical bytes (sha256); repair rewrote a valid catalog"
