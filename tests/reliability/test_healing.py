"""Healing by content: a rotten or replaced remote object is found and put back from any intact
copy of the same bytes (a local file under another name, the same remote under another name, a
second remote with the local disk gone), also after a kill -9 in the middle of a remote-to-remote
heal. Each case checks that no byte was lost: every object ends sha256-equal to what was pushed."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from agent.faultpoints import ENV
from tests.reliability.invariants import lost_bytes, snapshot_remote_at, stray_temps
from tests.reliability.ledger import said
from tests.remote.damage import flip_remote_object
from tests.support import MODEL_FILE, SyncProject, cli_env, run_subprocess

KINDS = ["local", "s3_seaweedfs", "gdrive_emulator"]
LABEL = {"local": "local", "s3_seaweedfs": "S3 (SeaweedFS)", "gdrive_emulator": "Drive (emulator)"}
BACKUP = "dinesh_ai_model_backup.pth"


def cli(root: Path, *args: str, **env: str) -> tuple[int, str]:
    proc = run_subprocess(list(args), root, env=cli_env(**env), timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def ok(root: Path, *args: str) -> str:
    code, out = cli(root, *args)
    assert code == 0, (args, out)
    return out


def version_of(proj: SyncProject) -> str:
    return next(proj.models.glob("dinesh_ai_model_v*.pth")).name


def remotes_of(proj: SyncProject, settings: dict[str, dict[str, Any]], tmp_path: Path) -> dict:
    return {name: snapshot_remote_at(s, tmp_path / f"check-{name}") for name, s in settings.items()}


def sizes_of(snapshot: dict[str, dict[str, str]], proj: SyncProject) -> dict[str, int]:
    """Every object here is one of the test's few files: its size from the model dir's copy."""
    sizes = {p.name: p.stat().st_size for p in proj.models.iterdir() if p.is_file()}
    return {n: sizes.get(n, 0) for side in snapshot.values() for n in side}


def two_versions_apart(proj: SyncProject, *push: str) -> str:
    """A version whose bytes the remote holds under its own name and the backup slot's only:
    the model moved on since, so the current files hold other bytes."""
    ok(proj.root, "backup")
    ok(proj.root, "backup", "--kind", "version")
    ok(proj.root, "push", *push)
    proj.write_model(seed=2)
    ok(proj.root, "push", *push)
    return version_of(proj)


def about(out: str, name: str, root: Path) -> str:
    """The line of ``out`` that says what happened to ``name`` on the remote, for the ledger."""
    line = next((x for x in out.splitlines() if x.startswith(f"{name}: healed on")), out)
    return said(line, root, limit=140)


def healed(case, before: dict, after: dict, sizes: dict, how: str) -> None:  # type: ignore[no-untyped-def]
    assert after == before, "a remote was not healed back to what was pushed"
    case.lost_bytes = lost_bytes(before, after, sizes)
    assert case.lost_bytes == 0
    case.transfers_completed += 1
    case.verified = f"{how}; every remote object sha256-equal to what was pushed; verify --deep 0"


@pytest.mark.parametrize("kind", KINDS)
def test_rotten_object_healed_from_a_local_file_under_another_name(ledger, tmp_path, request, kind):
    settings = request.getfixturevalue(f"{kind}_settings")
    with ledger.case(
        fault=f"rotten object on a {LABEL[kind]} remote, its only intact copy a local file "
        "under another name",
        where="the dated version's object (one byte flipped, same metadata); the local version "
        "deleted; the current file holds its bytes (restored from it)",
        user_sees="`repair --remote r --deep` heals both sides from the current file, exit 0",
    ) as case:
        proj = SyncProject.create(tmp_path / "p", settings)
        proj.write_model(seed=1)
        ok(proj.root, "backup", "--kind", "version")
        ok(proj.root, "push")
        version = version_of(proj)
        proj.write_model(seed=2)
        ok(proj.root, "push")
        ok(proj.root, "restore", "--from", version, "--yes")
        good = (proj.models / version).read_bytes()
        before = remotes_of(proj, {"r": settings}, tmp_path)
        sizes = sizes_of(before, proj)
        (proj.models / version).unlink()
        flip_remote_object(request, kind, settings, version)

        out = ok(proj.root, "repair", "--remote", "r", "--deep")
        assert f"{version}: healed here (copied from the current file {MODEL_FILE})" in out
        assert f"{version}: healed on r (corrupted there): uploaded from" in out
        assert (proj.models / version).read_bytes() == good
        ok(proj.root, "verify", "--remote", "r", "--deep")
        ok(proj.root, "verify")
        healed(case, before, remotes_of(proj, {"r": settings}, tmp_path), sizes,
               "repair --deep: " + said(out, proj.root))  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_rotten_object_healed_from_the_same_remote_with_the_disk_gone(
    ledger, tmp_path, request, kind
):
    settings = request.getfixturevalue(f"{kind}_settings")
    with ledger.case(
        fault=f"rotten object on a {LABEL[kind]} remote, the local disk gone",
        where="the dated version's object (one byte flipped); models_dir deleted; the remote "
        "holds the same bytes as the backup slot",
        user_sees="`repair --remote r --deep` copies the backup slot over it server-side, exit 0",
    ) as case:
        proj = SyncProject.create(tmp_path / "p", settings)
        proj.write_model(seed=1)
        version = two_versions_apart(proj)
        before = remotes_of(proj, {"r": settings}, tmp_path)
        sizes = sizes_of(before, proj)
        shutil.rmtree(proj.models)
        flip_remote_object(request, kind, settings, version)

        out = ok(proj.root, "repair", "--remote", "r", "--deep")
        assert f"{version}: healed on r (corrupted there): copied server-side from {BACKUP}" in out
        ok(proj.root, "verify", "--remote", "r", "--deep")
        healed(case, before, remotes_of(proj, {"r": settings}, tmp_path), sizes,
               "repair --deep: " + about(out, version, proj.root))  # fmt: skip


def nas_and_s3(tmp_path: Path, request) -> tuple[SyncProject, dict[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    nas = request.getfixturevalue("local_settings")
    s3 = request.getfixturevalue("s3_seaweedfs_settings")
    proj = SyncProject.create(tmp_path / "p", nas)
    proj.write_config(extra_remotes={"s3": s3})
    proj.write_model(seed=1)
    return proj, {"r": nas, "s3": s3}


def test_rotten_s3_healed_from_a_second_remote_with_the_disk_gone(ledger, tmp_path, request):
    with ledger.case(
        fault="rotten objects on s3, the local disk gone, a NAS remote intact",
        where="the version's and the backup slot's objects on SeaweedFS (one byte flipped "
        "each, same metadata); models_dir deleted",
        user_sees="`repair --all --deep` fetches the content from the NAS once and heals s3, "
        "exit 0",
    ) as case:
        proj, settings = nas_and_s3(tmp_path, request)
        version = two_versions_apart(proj, "--all")
        before = remotes_of(proj, settings, tmp_path)
        sizes = sizes_of(before, proj)
        shutil.rmtree(proj.models)
        for name in (version, BACKUP):
            flip_remote_object(request, "s3_seaweedfs", settings["s3"], name)

        out = ok(proj.root, "repair", "--all", "--deep")
        assert f"{BACKUP}: healed on s3 (corrupted there): copied from {BACKUP} on r" in out
        # content crosses the wire once: the version is copied from what was just healed
        assert f"{version}: healed on s3 (corrupted there): copied server-side from {BACKUP}" in out
        for remote in settings:
            ok(proj.root, "verify", "--remote", remote, "--deep")
        healed(case, before, remotes_of(proj, settings, tmp_path), sizes,
               "repair --all --deep: " + about(out, version, proj.root))  # fmt: skip


def test_kill_during_a_remote_to_remote_heal(ledger, tmp_path, request):
    with ledger.case(
        fault="kill -9 during a remote-to-remote heal",
        where="`repair --all --deep` killed after fetching the content from the NAS, before "
        "uploading it to s3 (crash point heal-fetched)",
        user_sees="the next `repair --all --deep` completes, exit 0",
    ) as case:
        proj, settings = nas_and_s3(tmp_path, request)
        version = two_versions_apart(proj, "--all")
        before = remotes_of(proj, settings, tmp_path)
        sizes = sizes_of(before, proj)
        shutil.rmtree(proj.models)
        for name in (version, BACKUP):
            flip_remote_object(request, "s3_seaweedfs", settings["s3"], name)

        code, out = cli(proj.root, "repair", "--all", "--deep", **{ENV: "heal-fetched"})
        assert code == -signal.SIGKILL, out
        case.faults_injected += 1  # the kill, besides the damage
        out = ok(proj.root, "repair", "--all", "--deep")
        assert "healed on s3" in out
        for remote in settings:
            ok(proj.root, "verify", "--remote", remote, "--deep")
        assert stray_temps(proj.models) == []
        heal_dir = proj.models / ".model-safety" / "heal"
        assert not heal_dir.exists() or not any(heal_dir.iterdir())
        how = "after the kill, repair --all --deep: " + about(out, version, proj.root)
        healed(case, before, remotes_of(proj, settings, tmp_path), sizes, how)


@pytest.mark.parametrize("kind", KINDS)
def test_object_replaced_since_push_is_caught_by_a_shallow_verify(ledger, tmp_path, request, kind):
    settings = request.getfixturevalue(f"{kind}_settings")
    with ledger.case(
        fault=f"object on a {LABEL[kind]} remote replaced since it was pushed",
        where="the dated version's object rewritten behind the agent: one byte flipped, same "
        "size, same metadata",
        user_sees="`verify --remote r` (no download) exit 3 'changed since push'; the command "
        "it recommends heals it",
    ) as case:
        proj = SyncProject.create(tmp_path / "p", settings)
        proj.write_model(seed=1)
        ok(proj.root, "backup", "--kind", "version")
        ok(proj.root, "push")
        ok(proj.root, "verify", "--remote", "r")
        version = version_of(proj)
        before = remotes_of(proj, {"r": settings}, tmp_path)
        sizes = sizes_of(before, proj)
        flip_remote_object(request, kind, settings, version)

        code, out = cli(proj.root, "verify", "--remote", "r")
        assert code == 3, out
        line = next(x for x in out.splitlines() if version in x and "changed since push" in x)
        recommended = line.split("`model-safety ")[1].split("`")[0].split()
        assert recommended == ["repair", "--remote", "r"]
        out = ok(proj.root, *recommended)
        assert f"{version}: healed on r" in out
        ok(proj.root, "verify", "--remote", "r", "--deep")
        ok(proj.root, "verify", "--remote", "r")
        healed(case, before, remotes_of(proj, {"r": settings}, tmp_path), sizes,
               "verify: " + said(line, proj.root, limit=70) + "; repair: "
               + about(out, version, proj.root))  # fmt: skip
