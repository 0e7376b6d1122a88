"""kill -9 of a real CLI process at exact steps (test-only crash points, agent/faultpoints.py):
during a local backup, a restore, the remote catalog write, a pull and a prune. Each time nothing
that existed before is lost, the same command run again completes, and no temp file is left."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from agent.faultpoints import ENV
from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_dir,
    snapshot_dir,
    snapshot_remote_at,
    stray_temps,
)
from tests.reliability.ledger import said
from tests.support import MODEL_FILE, TOKENIZER, SyncProject, cli_env, run_subprocess


def crash(root: Path, point: str, *args: str) -> None:
    """Run ``model-safety ARGS`` and assert it died by SIGKILL at crash point ``point``."""
    proc = run_subprocess(list(args), root, env=cli_env(**{ENV: point}))
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr)


def ok(root: Path, *args: str) -> str:
    proc = run_subprocess(list(args), root)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def versions(models: Path) -> list[str]:
    return sorted(p.name for p in models.glob("dinesh_ai_model_v*.pth"))


def test_kill_during_backup_before_the_rename(ledger, project):
    with ledger.case(
        fault="kill -9 during a local backup (copies written, not yet renamed)",
        where="`backup --kind version`, crash point backup-copied",
        user_sees="the process dies; the next backup makes the version and removes the temps",
    ) as case:
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        crash(project.root, "backup-copied", "backup", "--kind", "version")
        left = stray_temps(project.models)
        assert len(left) == 2, left  # the model's and the tokenizer's temp copies
        assert versions(project.models) == []
        ok(project.root, "backup", "--kind", "version")
        case.transfers_completed += 1
        assert len(versions(project.models)) == 1
        after = {"local": snapshot_dir(project.models)}
        case.lost_bytes = lost_bytes(before, after, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        ok(project.root, "verify")
        case.verified = "sources unchanged; 2 temps left by the kill removed; verify exit 0"


def test_kill_during_backup_between_two_renames(ledger, project):
    with ledger.case(
        fault="kill -9 during a local backup (one file renamed, catalog not saved)",
        where="`backup --kind version`, crash point backup-commit",
        user_sees="the process dies; the next backup writes a complete version; verify is clean",
    ) as case:
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        crash(project.root, "backup-commit", "backup", "--kind", "version")
        ok(project.root, "backup", "--kind", "version")
        case.transfers_completed += 1
        (version,) = versions(project.models)
        after = snapshot_dir(project.models)
        assert after[version] == before["local"][MODEL_FILE]
        case.lost_bytes = lost_bytes(before, {"local": after}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        ok(project.root, "verify")
        case.verified = f"{version} equals the source; verify exit 0; no temps"


def test_kill_during_restore_between_set_aside_and_switch(ledger, project):
    with ledger.case(
        fault="kill -9 during a restore (current file set aside, copy not yet in place)",
        where="`restore --yes`, crash point restore-switch",
        user_sees="the process dies; the next restore puts the copy in place; the replaced "
        "current file is kept as *_replaced-*",
    ) as case:
        ok(project.root, "backup", "--kind", "version")
        (version,) = versions(project.models)
        project.write_model(seed=7)  # an unsaved newer current the restore must not destroy
        before = {"local": snapshot_dir(project.models)}
        sizes = {sha: size for sha, size in _by_content(project.models).items()}
        crash(project.root, "restore-switch", "restore", "--from", version, "--yes")
        ok(project.root, "restore", "--from", version, "--yes")
        case.transfers_completed += 1
        after = snapshot_dir(project.models)
        assert after[MODEL_FILE] == after[version]
        # The current file before the restore survives under a kept-aside name: by content.
        case.lost_bytes = lost_bytes(before, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        ok(project.root, "verify")
        case.verified = "restored file equals the version; the overwritten current kept aside"


def _by_content(models: Path) -> dict[str, int]:
    snap, sizes = snapshot_dir(models), sizes_dir(models)
    return {snap[name]: size for name, size in sizes.items()}


def local_remote(tmp_path: Path, local_settings: dict) -> SyncProject:
    proj = SyncProject.create(tmp_path / "proj", local_settings, max_backups=2)
    proj.write_model(seed=1)
    return proj


def test_kill_before_the_remote_catalog_write(ledger, tmp_path, local_settings):
    with ledger.case(
        fault="kill -9 before the remote catalog write (objects pushed)",
        where="`push` to a local remote, crash point remote-catalog-write",
        user_sees="the process dies; the next push records the objects without re-sending them",
    ) as case:
        proj = local_remote(tmp_path, local_settings)
        ok(proj.root, "backup", "--kind", "version")
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)
        crash(proj.root, "remote-catalog-write", "push")
        remote_dir = Path(local_settings["path"])
        assert not (remote_dir / ".model-safety" / "catalog.json").exists()
        out = ok(proj.root, "push")
        case.transfers_completed += 1
        remote = snapshot_remote_at(local_settings, tmp_path / "check-state")
        catalog = (remote_dir / ".model-safety" / "catalog.json").read_text()
        assert remote == before["local"]
        assert all(name in catalog for name in before["local"])
        case.lost_bytes = lost_bytes(before, {"local": snapshot_dir(proj.models)}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(proj.models) == [] and stray_temps(remote_dir) == []
        assert leftover_journals(proj.models) == []
        summary = said("\n".join(ln for ln in out.splitlines() if "file(s)" in ln))
        case.verified = f"remote == local ({len(remote)} files), all catalogued; push: {summary}"


def test_kill_during_a_pull_between_two_files(ledger, tmp_path, local_settings):
    with ledger.case(
        fault="kill -9 during a pull (one file in place, local catalog not saved)",
        where="`pull` from a local remote after the disk died, crash point pull-fetched",
        user_sees="the process dies; the next pull completes and restores the current file",
    ) as case:
        proj = local_remote(tmp_path, local_settings)
        ok(proj.root, "backup", "--kind", "version")
        ok(proj.root, "push")
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)
        for p in proj.models.iterdir():
            if p.is_file():
                p.unlink()  # the disk died (state dir kept: the catalog is lost with it below)
        (proj.models / ".model-safety" / "catalog.json").unlink(missing_ok=True)
        crash(proj.root, "pull-fetched", "pull")
        ok(proj.root, "pull")
        case.transfers_completed += 1
        after = snapshot_dir(proj.models)
        assert after[MODEL_FILE] == before["local"][MODEL_FILE]
        assert after[TOKENIZER] == before["local"][TOKENIZER]
        remote = snapshot_remote_at(local_settings, tmp_path / "check-state")
        case.lost_bytes = lost_bytes(before, {"local": after, "remote": remote}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []
        ok(proj.root, "verify")
        case.verified = "model and tokenizer back with equal sha256; verify exit 0; no temps"


def test_kill_during_a_prune_between_two_files_of_a_version(ledger, project):
    with ledger.case(
        fault="kill -9 during a prune (companion deleted, model file not yet)",
        where="`prune`, crash point prune-delete",
        user_sees="the process dies; the next prune finishes deleting that version only",
    ) as case:
        project.write_config(max_backups=2)
        names: list[str] = []  # oldest first (same day: .2 and .3 sort before the first)
        for seed in (11, 12, 13):
            project.write_model(seed=seed)
            ok(project.root, "backup", "--kind", "version")
            names += sorted(set(versions(project.models)) - set(names))
        assert len(names) == 3
        oldest = names[0]
        keep = {"local": snapshot_dir(project.models)}
        keep["local"] = {n: s for n, s in keep["local"].items() if not _same_version(n, oldest)}
        sizes = sizes_dir(project.models)
        crash(project.root, "prune-delete", "prune")
        out = ok(project.root, "prune")
        after = snapshot_dir(project.models)
        assert versions(project.models) == sorted(names[1:]), (out, sorted(after))
        assert not [n for n in after if _same_version(n, oldest)], sorted(after)
        case.lost_bytes = lost_bytes(keep, {"local": after}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        ok(project.root, "verify")
        case.verified = "the 2 newest versions and the current file intact; verify exit 0"


def _same_version(name: str, model_version: str) -> bool:
    """tokenizer_v2026-01-02.2.json belongs to dinesh_ai_model_v2026-01-02.2.pth."""
    tag = model_version.removeprefix("dinesh_ai_model").removesuffix(".pth")
    return name in (model_version, f"tokenizer{tag}.json")


def test_kill_during_a_push_to_a_local_remote_leaves_no_temp_there(ledger, tmp_path):
    from tests.remote.test_processes import big_checkpoint

    (tmp_path / "nas").mkdir()
    settings = {"type": "local", "path": str(tmp_path / "nas" / "model-backups")}
    remote_dir = Path(settings["path"])
    with ledger.case(
        fault="kill -9 during a push to a local (NAS) remote",
        where="agent process, SIGKILL while it writes its temp copy on the remote (crash point "
        "upload-progress: after the first bytes reached it)",
        user_sees="the process dies; a later push completes and removes the temp it left once "
        "idle for 10 minutes (a fresh one may be another machine's push)",
    ) as case:
        proj = SyncProject.create(tmp_path / "proj", settings)
        proj.models.mkdir()
        big_checkpoint(proj.models / MODEL_FILE, mb=48)
        (proj.models / TOKENIZER).write_text("{}")
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)

        # at an exact step, not by watching the remote dir: a fast copy could slip between two
        # looks on a busy machine
        crash(proj.root, "upload-progress", "push")
        left = stray_temps(remote_dir)
        assert left, "no temp on the remote at the crash point"
        for name in left:  # as if the next push came 20 minutes later
            os.utime(remote_dir / name, (time.time() - 1200, time.time() - 1200))
        out = ok(proj.root, "push")
        case.transfers_completed += 1
        assert stray_temps(remote_dir) == [], out
        remote = snapshot_remote_at(settings, tmp_path / "check-state")
        assert remote == before["local"]
        case.lost_bytes = lost_bytes(before, {"remote": remote}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(proj.models) == []
        case.verified = f"remote == local ({len(remote)} files); {len(left)} remote temp removed"


def test_kill_while_saving_the_state_leaves_no_temp_in_the_state_dir(ledger, project):
    state = project.models / ".model-safety"
    with ledger.case(
        fault="kill -9 while the catalog is being saved",
        where="`backup --kind version`, crash point state-write (the state file's temp is "
        "written, not yet renamed)",
        user_sees="the process dies; the next backup sees the version, saves the catalog and "
        "removes the temp",
    ) as case:
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        crash(project.root, "state-write", "backup", "--kind", "version")
        left = stray_temps(state)
        assert left, "the kill left no temp in the state dir"
        out = ok(project.root, "backup", "--kind", "version")
        case.transfers_completed += 1
        assert stray_temps(project.models) == [], out
        after = snapshot_dir(project.models)
        (version,) = versions(project.models)  # the killed run's version, found and kept
        assert after[version] == before["local"][MODEL_FILE]
        case.lost_bytes = lost_bytes(before, {"local": after}, sizes)
        assert case.lost_bytes == 0
        ok(project.root, "verify")
        case.verified = f"{len(left)} state-dir temp removed; {version} catalogued; verify exit 0"


def test_kill_while_saving_range_hashes_leaves_no_temp(ledger, project):
    with ledger.case(
        fault="kill -9 while a content's range hashes are being saved",
        where="`backup --kind version`, crash point ranges-write (the range-hash file's temp "
        "is written, not yet renamed)",
        user_sees="the process dies before the version exists; the next backup makes it and "
        "removes the temp",
    ) as case:
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        crash(project.root, "ranges-write", "backup", "--kind", "version")
        assert stray_temps(project.models), "the kill left no temp"
        ok(project.root, "backup", "--kind", "version")
        case.transfers_completed += 1
        assert stray_temps(project.models) == []
        after = snapshot_dir(project.models)
        (version,) = versions(project.models)
        assert after[version] == before["local"][MODEL_FILE]
        case.lost_bytes = lost_bytes(before, {"local": after}, sizes)
        assert case.lost_bytes == 0
        ok(project.root, "verify")
        case.verified = f"temp removed; {version} made by the next backup; verify exit 0"


def test_kill_during_a_remote_prune_between_two_objects_of_a_version(ledger, tmp_path):
    (tmp_path / "nas").mkdir()
    settings = {"type": "local", "path": str(tmp_path / "nas" / "model-backups")}
    remote_dir = Path(settings["path"])
    with ledger.case(
        fault="kill -9 during a remote prune (model object deleted, its companion not yet)",
        where="`run` (push, then the remote's retention) on a local remote, crash point "
        "remote-prune-delete",
        user_sees="the process dies; the next run finishes that version; verify --remote is clean",
    ) as case:
        proj = SyncProject.create(
            tmp_path / "proj", settings, max_backups=5, retention={"keep_last": 2}
        )
        for day, seed in (("2026-11-01", 41), ("2026-11-08", 42), ("2026-11-15", 43)):
            proj.write_model(seed=seed)
            ok(proj.root, "run", "--today", day)  # a version, a push, the remote's retention
        proj.write_model(seed=44)
        crash(proj.root, "remote-prune-delete", "run", "--today", "2026-11-22")
        before = snapshot_remote_at(settings, tmp_path / "check-state")
        sizes = {p.name: p.stat().st_size for p in remote_dir.iterdir() if p.is_file()}
        # keep_last 2: 11-15 and 11-22 stay (and the current files); 11-01 and 11-08 go
        keep = {n: sha for n, sha in before.items() if not ("11-01" in n or "11-08" in n)}
        assert any("2026-11-22" in n for n in keep), "the killed run pushed the new version"
        out = ok(proj.root, "run", "--today", "2026-11-22")
        case.transfers_completed += 1
        after = snapshot_remote_at(settings, tmp_path / "check-state")
        left = sorted(n for n in after if "_v" in n)
        assert not [n for n in left if "11-01" in n or "11-08" in n], (left, out)
        assert len(left) == 4, left  # 11-15 and 11-22, model file and tokenizer each
        assert stray_temps(remote_dir) == []
        verify = run_subprocess(["verify", "--remote", "r"], proj.root)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        case.lost_bytes = lost_bytes({"remote": keep}, {"remote": after}, sizes)
        assert case.lost_bytes == 0, (sorted(keep), sorted(after), out)
        case.verified = (
            f"{len(left)} version objects left (the 2 newest), no orphan companion; "
            "verify --remote exit 0"
        )
