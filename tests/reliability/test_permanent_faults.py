"""Permanent faults: wrong credentials, a missing bucket or folder, permission
denied, quota exceeded, a read-only models dir. Each gives one clear error line and exit 1,
without a retry storm (the requests are counted at the proxy / emulator), and deletes nothing on
either side.

Permission on ``models/``: the tests run as root, which ignores mode bits, and the venv's
interpreter is not executable by an unprivileged user here, so ``models/`` is made unwritable for
real by mounting it as a tmpfs and remounting that read-only (skipped where mount is refused)."""

from __future__ import annotations

import subprocess
import uuid

from tests.reliability.invariants import snapshot_dir, snapshot_remote_at, stray_temps
from tests.servers.drive import make_service_account
from tests.support import (
    SyncProject,
)

NO_WAIT = {"attempts": 5, "initial_wait": 0, "max_wait": 0, "jitter": 0}


def error_line(res) -> str:
    """The one line a permanent failure prints: exit 1, ``error: ...``, no traceback."""
    assert res.code == 1, res
    lines = [x for x in res.err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    return lines[0]


def pushed_project(tmp_path, settings: dict, ms) -> SyncProject:
    """A project whose model and a dated version are already on the remote, then a newer model
    that a push would send."""
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.write_model(seed=1)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    proj.write_model(seed=2)
    return proj


def test_s3_wrong_credentials_missing_bucket_denied_and_quota(
    ledger, tmp_path, seaweedfs, fault_proxy, ms
):
    settings = {**seaweedfs.settings(endpoint_url=fault_proxy.url), "retry": NO_WAIT}
    proj = pushed_project(tmp_path, settings, ms)
    local = snapshot_dir(proj.models)
    direct = seaweedfs.settings(prefix=settings["prefix"])
    remote = snapshot_remote_at(direct, tmp_path / "check-state")
    fresh = SyncProject.create(tmp_path / "fresh", settings)

    def unchanged() -> None:
        assert snapshot_dir(proj.models) == local
        assert snapshot_remote_at(direct, tmp_path / "check-state") == remote
        assert stray_temps(proj.models) == []

    rows = [
        (
            "S3 wrong credentials (wrong secret key)",
            {"profile": "seaweedfs-wrong-secret"},
            None,
            "check the credentials for remote 'r'",
        ),
        (
            "S3 bucket missing",
            {"bucket": f"no-such-bucket-{uuid.uuid4().hex[:8]}"},
            None,
            "does not exist: create it or fix bucket:",
        ),
        (
            "S3 permission denied on writes (a read-only key)",
            {},
            ("denied", "PUT"),
            "access denied (AccessDenied): check the credentials",
        ),
        ("S3 quota exceeded", {}, ("quota", "PUT"), "storage quota exceeded"),
    ]
    for fault, overrides, rule, message in rows:
        with ledger.case(
            fault=fault,
            where="SeaweedFS (behind the loopback proxy)"
            + (f", 403 {rule[0]} on every {rule[1]}" if rule else ", the remote's config"),
            user_sees=f"one line `error: remote 'r': ... {message}`, exit 1",
        ) as case:
            proj.remote = {**settings, **overrides}
            proj.write_config()
            fresh.remote = proj.remote
            fresh.write_config()
            fault_proxy.clear()
            if rule:
                fault_proxy.add(rule[0], method=rule[1], limit=1000)
            requests = {}
            for what, root, args in (
                ("push", proj.root, ("push",)),
                ("pull", fresh.root, ("pull",)),
                ("verify", proj.root, ("verify", "--remote", "r")),
            ):
                before = sum(fault_proxy.requests.values())
                res = ms(root, *args)
                if what == "pull" and rule:  # a pull never writes to the remote
                    assert res.code == 0, res
                elif what == "verify" and rule:  # the copies are checked; only the stamp is lost
                    assert res.code == 0, res
                    assert "could not record the verification" in res.err
                else:
                    assert message in error_line(res), res.err
                requests[what] = sum(fault_proxy.requests.values()) - before
            case.faults_injected = max(1, fault_proxy.faults)
            # no retry storm: a permanent error is never retried
            assert requests["push"] <= (8 if rule else 3), requests
            if rule:
                # push: the new file (the catalog is not rewritten: nothing new arrived);
                # verify: its verified_at stamp. Each refused once; a retry would make 5 each.
                assert fault_proxy.requests[rule[1]] == 2, "a refused write was retried"
            unchanged()
            if not rule:  # the failed pull left nothing behind
                assert not fresh.models.exists() or stray_temps(fresh.models) == []
                assert not list(fresh.models.glob("*.pth"))
            case.lost_bytes = 0
            case.verified = (
                f"exit 1 with one error line; requests to the server: {requests}; local dir "
                f"and remote unchanged ({len(local)} + {len(remote)} files, sha256)"
            )


def test_drive_wrong_key_missing_folder_and_quota(
    ledger, tmp_path, drive_emulator, gdrive_emulator_settings, ms
):
    settings = {**gdrive_emulator_settings, "retry": NO_WAIT}
    folder = settings["folder_id"]
    proj = pushed_project(tmp_path, settings, ms)
    local = snapshot_dir(proj.models)
    remote = {f.title: f.md5 for f in drive_emulator.files_in(folder)}
    stranger = tmp_path / "stranger.json"
    make_service_account(stranger, drive_emulator.token_uri, "stranger@example.iam")
    used = sum(len(f.data) for f in drive_emulator.state.files.values())
    rows = [
        (
            "Drive wrong credentials (a key Google does not know)",
            {"service_account_file": str(stranger)},
            None,
            "could not get an access token",
        ),
        ("Drive folder missing", {"folder_id": "f-nope"}, None, "does not exist or is not shared"),
        ("Drive storage quota exceeded", {}, used, "storage quota exceeded"),
    ]
    for fault, overrides, quota, message in rows:
        with ledger.case(
            fault=fault,
            where="Drive v2 emulator" + (", storageQuotaExceeded" if quota else ""),
            user_sees=f"one line `error: remote 'r': ... {message}`, exit 1",
        ) as case:
            proj.remote = {**settings, **overrides}
            proj.write_config()
            drive_emulator.set_quota(quota)
            drive_emulator.reset_counters()
            try:
                res = ms(proj.root, "push")
            finally:
                drive_emulator.set_quota(None)
            assert message in error_line(res).lower(), res.err
            requests = drive_emulator.counter("requests")
            # auth + listing + catalog + the refused upload (+ the catalog written last): no
            # retries; with a quota the refused upload session is asked for once
            assert requests <= (12 if quota else 3), str(drive_emulator.state.counters)
            assert drive_emulator.counter("POST /upload/drive/v2/files") == (1 if quota else 0)
            assert snapshot_dir(proj.models) == local
            assert {f.title: f.md5 for f in drive_emulator.files_in(folder)} == remote
            case.faults_injected = 1
            case.lost_bytes = 0
            case.verified = (
                f"exit 1 with one error line; {requests} requests reached the server; local "
                f"dir and Drive folder unchanged ({len(local)} + {len(remote)} files)"
            )


def test_read_only_models_dir(ledger, tmp_path, tmpfs, ms):
    with ledger.case(
        fault="models/ not writable (read-only file system)",
        where="models dir on a tmpfs remounted read-only; `backup`, `pull` and `run`",
        user_sees="one line `error: cannot write ...: the file system is read-only; remount it "
        "read-write`, exit 1",
    ) as case:
        nas = tmp_path / "nas"
        settings = {"type": "local", "path": str(nas)}
        proj = SyncProject.create(tmp_path / "proj", settings)
        mount = tmpfs("20m", "models-fs")
        proj.models.symlink_to(mount)
        proj.write_model(seed=1)
        assert ms(proj.root, "backup", "--kind", "version").code == 0
        assert ms(proj.root, "push").code == 0
        local, remote = snapshot_dir(proj.models), snapshot_dir(nas)
        (proj.models / "dinesh_ai_model.pth").unlink()  # a pull would have work to do
        local.pop("dinesh_ai_model.pth")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        for args in (("backup",), ("pull",), ("run",)):
            line = error_line(ms(proj.root, *args))
            assert "read-only" in line and "remount it read-write" in line, line
        assert snapshot_dir(proj.models) == local
        assert snapshot_dir(nas) == remote
        case.faults_injected = 3
        case.lost_bytes = 0
        case.verified = "backup, pull and run: exit 1, one line; both sides unchanged (sha256)"
