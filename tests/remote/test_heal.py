"""A copy is known by its content: repair, pull and restore heal a missing, damaged or replaced
copy from any intact copy with the same sha256, wherever it is (another local file, the same
remote under another name, another remote). Through the CLI, on SeaweedFS, the Drive emulator and
local disk."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.remote.damage import flip_remote_object, remote_bytes
from tests.support import MODEL_FILE, SyncProject


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_name(proj: SyncProject) -> str:
    return next(proj.models.glob("dinesh_ai_model_v*.pth")).name


def ok(ms, root, *args: str):  # type: ignore[no-untyped-def]
    res = ms(root, *args)
    assert res.code == 0, (args, res.out, res.err)
    return res


@pytest.mark.parametrize("how", ["recommended", "deep"])
def test_rewritten_object_on_s3_is_caught_and_healed(tmp_path, request, ms, how):
    """Push a dated version; the disk dies and pull brings the current file back; someone
    rewrites the version's object on S3 with one bit flipped and the same metadata."""
    settings = request.getfixturevalue("s3_seaweedfs_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    ok(ms, proj.root, "backup", "--kind", "version")
    ok(ms, proj.root, "push")
    version = version_name(proj)
    good = (proj.models / version).read_bytes()
    shutil.rmtree(proj.models)
    ok(ms, proj.root, "pull")
    flip_remote_object(request, "s3_seaweedfs", settings, version)

    res = ms(proj.root, "verify", "--remote", "r")
    assert res.code == 3, res.out + res.err
    line = next(x for x in res.out.splitlines() if version in x)
    assert "changed since push" in line and "etag" in line

    if how == "recommended":
        res = ms(proj.root, "verify", "--remote", "r", "--deep")
        assert res.code == 3, res.out + res.err
        line = next(x for x in res.out.splitlines() if version in x)
        assert "corrupted" in line
        recommended = line.split("`model-safety ")[1].split("`")[0].split()
        assert recommended == ["repair", "--remote", "r"]
        # the finding is remembered: a shallow verify still calls it corrupted
        res = ms(proj.root, "verify", "--remote", "r")
        assert res.code == 3 and "corrupted" in res.out, res.out
        res = ms(proj.root, *recommended)
    else:
        res = ms(proj.root, "repair", "--remote", "r", "--deep")
    assert res.code == 0, res.out + res.err
    assert f"{version}: healed on r" in res.out
    assert "copied server-side from dinesh_ai_model.pth" in res.out  # the remote's own copy
    assert remote_bytes(request, "s3_seaweedfs", settings, version) == good
    ok(ms, proj.root, "verify", "--remote", "r", "--deep")
    ok(ms, proj.root, "verify", "--remote", "r")


def test_push_puts_back_an_object_replaced_since_it_was_pushed(tmp_path, request, ms):
    settings = request.getfixturevalue("s3_seaweedfs_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    ok(ms, proj.root, "backup", "--kind", "version")
    ok(ms, proj.root, "push")
    version = version_name(proj)
    flip_remote_object(request, "s3_seaweedfs", settings, version)
    # its metadata still claims the pushed sha256: only the recorded identity tells
    res = ok(ms, proj.root, "push")
    assert version in res.out
    assert (
        remote_bytes(request, "s3_seaweedfs", settings, version)
        == (proj.models / version).read_bytes()
    )
    ok(ms, proj.root, "verify", "--remote", "r", "--deep")


def test_an_object_touched_but_intact_is_only_recorded_again(tmp_path, request, ms):
    settings = request.getfixturevalue("local_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    ok(ms, proj.root, "backup", "--kind", "version")
    ok(ms, proj.root, "push")
    version = version_name(proj)
    obj = Path(settings["path"]) / version
    obj.write_bytes(obj.read_bytes())  # rewritten with the same bytes (a copy tool, say)
    res = ms(proj.root, "verify", "--remote", "r")
    assert res.code == 3 and "changed since push" in res.out, res.out
    res = ok(ms, proj.root, "repair", "--remote", "r")
    assert f"{version}: changed on r since push, but its bytes read back intact" in res.out
    ok(ms, proj.root, "verify", "--remote", "r")


def two_versions_apart(proj: SyncProject, ms, *push: str) -> str:  # type: ignore[no-untyped-def]
    """A version whose bytes the remote holds only under its own name and the backup slot's,
    and the model moved on since (so the current file holds other bytes)."""
    ok(ms, proj.root, "backup")
    ok(ms, proj.root, "backup", "--kind", "version")
    ok(ms, proj.root, "push", *push)
    proj.write_model(seed=2)
    ok(ms, proj.root, "push", *push)
    return version_name(proj)


@pytest.mark.parametrize("kind", ["s3_seaweedfs", "gdrive_emulator"])
def test_pull_takes_the_same_content_from_another_name_when_one_is_rotten(
    tmp_path, request, ms, kind
):
    settings = request.getfixturevalue(f"{kind}_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    version = two_versions_apart(proj, ms)
    good = (proj.models / version).read_bytes()
    shutil.rmtree(proj.models)
    flip_remote_object(request, kind, settings, version)

    res = ms(proj.root, "pull", "--version", version)
    assert (proj.models / version).read_bytes() == good
    assert (proj.models / MODEL_FILE).read_bytes() == good  # restored from it: disk was empty
    assert (
        f"{version}: pulled from dinesh_ai_model_backup.pth on r (same content, checked: sha256)"
        in res.out
    )
    # the rotten object is reported, with the command that heals it
    assert res.code == 3, res.out + res.err
    line = next(x for x in res.err.splitlines() if "passed over" in x)
    assert line.startswith(f"warning: {version}: source passed over: {version} on r"), line
    recommended = line.split("`model-safety ")[1].split("`")[0].split()
    assert recommended == ["repair"]
    ok(ms, proj.root, *recommended)
    ok(ms, proj.root, "verify", "--remote", "r", "--deep")


def test_pull_copies_locally_what_the_machine_already_holds(tmp_path, request, ms):
    settings = request.getfixturevalue("local_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    ok(ms, proj.root, "backup", "--kind", "version")
    ok(ms, proj.root, "push")
    version = version_name(proj)
    (proj.models / version).unlink()
    res = ok(ms, proj.root, "pull", "--version", version)
    assert (
        f"{version}: copied from the current file {MODEL_FILE} (same content, checked: sha256)"
        in res.out
    )
    assert "0 B received" in res.out


def test_restore_heals_a_rotten_version_from_the_same_bytes_elsewhere(tmp_path, request, ms):
    settings = request.getfixturevalue("local_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    version = two_versions_apart(proj, ms)
    good = (proj.models / version).read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 1
    (proj.models / version).write_bytes(bytes(data))

    res = ms(proj.root, "restore", "--from", version, "--yes")
    assert res.code == 0, res.out + res.err
    assert f"{version} was damaged or missing; healed from dinesh_ai_model_backup.pth" in res.err
    assert (proj.models / MODEL_FILE).read_bytes() == good
    assert (proj.models / version).read_bytes() == good


def test_restore_heals_from_a_remote_when_no_local_copy_holds_the_bytes(tmp_path, request, ms):
    settings = request.getfixturevalue("s3_seaweedfs_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    version = two_versions_apart(proj, ms)
    good = (proj.models / version).read_bytes()
    (proj.models / version).unlink()
    (proj.models / "dinesh_ai_model_backup.pth").unlink()

    res = ms(proj.root, "restore", "--from", version, "--yes")
    assert res.code == 0, res.out + res.err
    assert f"{version} was damaged or missing; healed here (pulled from {version} on r)" in res.out
    assert (proj.models / MODEL_FILE).read_bytes() == good
    assert sha((proj.models / version).read_bytes()) == sha(good)


def test_a_source_whose_bytes_fail_their_hash_is_reported_and_passed_over(tmp_path, request, ms):
    settings = request.getfixturevalue("local_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    version = two_versions_apart(proj, ms)
    good = (proj.models / version).read_bytes()
    (proj.models / version).unlink()
    # rot the cache cannot see: same size, mtime put back, same inode
    backup = proj.models / "dinesh_ai_model_backup.pth"
    st = backup.stat()
    with open(backup, "r+b") as fh:
        fh.seek(st.st_size // 2)
        byte = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([byte[0] ^ 1]))
    os.utime(backup, ns=(st.st_atime_ns, st.st_mtime_ns))

    res = ms(proj.root, "pull", "--version", version)
    assert res.code == 3, res.out + res.err  # damage was found: said, and passed over
    line = next(x for x in res.err.splitlines() if "source passed over" in x)
    assert line.startswith(f"warning: {version}: source passed over: dinesh_ai_model_backup.pth")
    assert f"pulled {version} from r" in res.out
    assert (proj.models / version).read_bytes() == good
    assert ms(proj.root, "verify").code == 3  # the rotten backup slot
    res = ok(ms, proj.root, *line.split("`model-safety ")[1].split("`")[0].split())
    assert "dinesh_ai_model_backup.pth: healed here" in res.out
    assert backup.read_bytes() == good
    ok(ms, proj.root, "verify")


def test_an_object_missing_from_the_remote_is_put_back_by_the_command_verify_names(
    tmp_path, request, ms
):
    settings = request.getfixturevalue("local_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    version = two_versions_apart(proj, ms)
    (Path(settings["path"]) / version).unlink()
    res = ms(proj.root, "verify", "--remote", "r")
    assert res.code == 3
    line = next(x for x in res.out.splitlines() if version in x)
    assert line.startswith("missing")
    recommended = line.split("`model-safety ")[1].split("`")[0].split()
    ok(ms, proj.root, *recommended)
    assert remote_bytes(request, "local", settings, version) == (proj.models / version).read_bytes()
    ok(ms, proj.root, "verify", "--remote", "r", "--deep")
