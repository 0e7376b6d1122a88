"""Transient faults on the wire: push and pull through the real CLI complete with
every byte intact while the network misbehaves.

S3: SeaweedFS behind the loopback FaultProxy (tests/servers/proxy.py): TCP resets before an
answer, responses cut in half after the server acted, 500 / 503 / SlowDown on a share of the
requests. Drive: the emulator's hooks: 503 mid-chunk (the server kept half the chunk), 403
userRateLimitExceeded, 429, an HTML 502 page, resets. The faults that fired are counted at the
proxy / emulator and recorded in the ledger. Retry waits are off (``retry:`` in the remote's
config), so the figures, not the clock, show the retries."""

from __future__ import annotations

import hashlib

from providers import open_provider
from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_dir,
    snapshot_dir,
    snapshot_remote_at,
    stray_temps,
)
from tests.remote.test_processes import big_checkpoint
from tests.support import MODEL_FILE, SyncProject, agent_cli

NO_WAIT = {"attempts": 10, "initial_wait": 0, "max_wait": 0, "jitter": 0}
UPLOAD_CHUNK = r"^/upload/drive/v2/files$"  # chunk PUTs go to the session URI
LIST = r"^/drive/v2/files$"
MEDIA_OR_META = r"^/drive/v2/files/[^/]+$"


def make_versions(proj: SyncProject, ms, mb: int) -> bytes:
    """A multipart-sized current model, a dated version of an older one, and the backup slot."""
    proj.models.mkdir(parents=True, exist_ok=True)
    (proj.models / "tokenizer.json").write_text('{"vocab": "v1"}')
    big_checkpoint(proj.models / MODEL_FILE, mb=mb)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    proj.write_model(seed=7)
    assert ms(proj.root, "backup").code == 0  # the pre-update slot: same bytes as current
    return (proj.models / MODEL_FILE).read_bytes()


def test_s3_push_and_pull_survive_resets_cuts_and_5xx(ledger, tmp_path, seaweedfs, fault_proxy, ms):
    with ledger.case(
        fault="S3 wire faults: TCP resets, responses cut mid-body, 500 / 503 / SlowDown",
        where="loopback proxy in front of SeaweedFS, on a share of every request of a push "
        "(multipart + server-side copy), a `verify --deep` and a pull",
        user_sees="retry warnings on stderr; push and pull exit 0",
    ) as case:
        settings = {**seaweedfs.settings(endpoint_url=fault_proxy.url), "retry": NO_WAIT}
        proj = SyncProject.create(tmp_path / "proj", settings)
        make_versions(proj, ms, mb=12)  # 3 parts of 5 MiB
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)

        # spread over the push's ~25 requests; at worst all hit one file, whose put is then
        # retried NO_WAIT["attempts"] times
        fault_proxy.add("reset", method="PUT", every=4, limit=2)
        fault_proxy.add("cut", method="PUT", every=5, limit=1)  # stored, the answer lost
        fault_proxy.add("503", every=6, limit=2)
        fault_proxy.add("slowdown", every=9, limit=1)
        fault_proxy.add("500", method="POST", limit=1)  # create or complete multipart
        fault_proxy.add("cut", method="POST", every=2, limit=1)
        pushed = agent_cli(proj.root, "push")
        assert pushed.returncode == 0, pushed.stderr
        assert "retrying" in pushed.stderr
        push_faults = fault_proxy.faults
        assert push_faults == 8, fault_proxy.rules
        case.transfers_completed += 1

        direct = seaweedfs.settings(prefix=settings["prefix"])
        remote = snapshot_remote_at(direct, tmp_path / "check-state")
        assert remote == before["local"]
        uploads = seaweedfs.client().list_multipart_uploads(
            Bucket=settings["bucket"], Prefix=settings["prefix"]
        )
        assert not uploads.get("Uploads"), "an interrupted upload was left open"
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []

        # a deep verify streams every object back: broken streams resume where they broke
        fault_proxy.clear()
        fault_proxy.add("cut", method="GET", every=2, limit=2)
        fault_proxy.add("reset", method="HEAD", every=3, limit=1)
        deep = agent_cli(proj.root, "verify", "--remote", "r", "--deep")
        assert deep.returncode == 0, deep.stderr
        assert deep.stdout.count("sha256 matches") == len(before["local"]), deep.stdout
        verify_faults = fault_proxy.faults
        assert verify_faults == 3

        fault_proxy.clear()
        fault_proxy.add("cut", method="GET", every=2, limit=3)  # downloads broken mid-stream
        fault_proxy.add("reset", method="GET", every=3, limit=2)
        fault_proxy.add("503", method="HEAD", every=2, limit=2)
        fault_proxy.add("slowdown", method="GET", every=5, limit=1)
        other = SyncProject.create(tmp_path / "restored", settings)
        pulled = agent_cli(other.root, "pull", "--version", "all")
        assert pulled.returncode == 0, pulled.stderr
        case.transfers_completed += 1
        pull_faults = fault_proxy.faults
        assert pull_faults >= 5, fault_proxy.rules
        restored = snapshot_dir(other.models)
        assert restored == before["local"]
        assert stray_temps(other.models) == [] and leftover_journals(other.models) == []
        case.faults_injected = push_faults + verify_faults + pull_faults
        after = {"remote": remote, "restored": restored}
        case.lost_bytes = lost_bytes(before, after, sizes)
        assert case.lost_bytes == 0
        case.verified = (
            f"{push_faults} faults in the push, {verify_faults} in a deep verify (every object "
            f"re-hashed: ok), {pull_faults} in the pull; remote and restored "
            f"dir == source ({len(remote)} files, sha256); no open multipart upload, journal "
            "or temp file"
        )


def test_drive_push_and_pull_survive_503_mid_chunk_rate_limits_and_html_502(
    ledger, tmp_path, drive_emulator, gdrive_emulator_settings, ms
):
    with ledger.case(
        fault="Drive wire faults: 503 mid-chunk, 403 userRateLimitExceeded, 429, HTML 502, "
        "connection resets",
        where="Drive v2 emulator hooks, on uploads (resumable chunks), listings, metadata and "
        "media downloads",
        user_sees="retry warnings on stderr; push and pull exit 0",
    ) as case:
        settings = {**gdrive_emulator_settings, "retry": NO_WAIT}
        proj = SyncProject.create(tmp_path / "proj", settings)
        make_versions(proj, ms, mb=1)  # 4 chunks of 256 KiB
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)
        inject = drive_emulator.inject
        drive_emulator.reset_counters()
        inject("PUT", UPLOAD_CHUNK, status=503, partial=True, times=2, skip=1)
        inject("PUT", UPLOAD_CHUNK, kind="reset", partial=True, times=1, skip=2)
        inject("GET", LIST, status=403, reason="userRateLimitExceeded", times=2)
        inject("GET", LIST, status=502, kind="html", times=1)
        inject("POST", r"^/upload/drive/v2/files$", status=429, reason="rateLimitExceeded")
        res = ms(proj.root, "push")
        assert res.code == 0, res
        push_faults = drive_emulator.counter("faults")
        assert push_faults == 7
        case.transfers_completed += 1
        folder = settings["folder_id"]
        remote = snapshot_remote_at(gdrive_emulator_settings, tmp_path / "check-state")
        assert remote == before["local"]
        assert not [f.title for f in drive_emulator.files_in(folder) if "partial" in f.title]

        drive_emulator.reset_counters()
        inject("GET", MEDIA_OR_META, status=429, reason="rateLimitExceeded", times=2, skip=2)
        inject("GET", MEDIA_OR_META, status=502, kind="html", times=2, skip=3)
        inject("GET", MEDIA_OR_META, kind="reset", times=1, skip=4)
        inject("GET", LIST, status=403, reason="rateLimitExceeded", times=1)
        other = SyncProject.create(tmp_path / "restored", settings)
        res = ms(other.root, "pull", "--version", "all")
        assert res.code == 0, res
        pull_faults = drive_emulator.counter("faults")
        assert pull_faults == 6
        case.transfers_completed += 1
        restored = snapshot_dir(other.models)
        assert restored == before["local"]
        assert stray_temps(other.models) == [] and leftover_journals(other.models) == []
        case.faults_injected = push_faults + pull_faults
        case.lost_bytes = lost_bytes(before, {"remote": remote, "restored": restored}, sizes)
        assert case.lost_bytes == 0
        case.verified = (
            f"{push_faults} faults in the push, {pull_faults} in the pull; Drive folder and "
            f"restored dir == source ({len(remote)} files, sha256); no temp title, journal or "
            "temp file"
        )


def test_s3_completion_whose_answer_was_lost_is_not_uploaded_again(
    ledger, tmp_path, seaweedfs, fault_proxy
):
    with ledger.case(
        fault="S3 CompleteMultipartUpload answer lost (the server completed the upload)",
        where="loopback proxy: the completion is forwarded, its response cut mid-body",
        user_sees="nothing: the retry finds the finished object and sends no part again",
    ) as case:
        settings = {**seaweedfs.settings(endpoint_url=fault_proxy.url), "retry": NO_WAIT}
        provider = open_provider("r", settings, state_dir=tmp_path / "state")
        src = tmp_path / MODEL_FILE
        data = big_checkpoint(src, mb=12)  # 3 parts
        fault_proxy.add("cut", method="POST", path_contains="uploadId=", limit=1)
        info = provider.put(MODEL_FILE, src)
        assert fault_proxy.faults == 1
        case.transfers_completed += 1
        # every part crossed the wire once; the completion's small XML body may go twice
        assert fault_proxy.body_bytes < len(data) + 64 * 1024, fault_proxy.body_bytes
        direct = seaweedfs.settings(prefix=settings["prefix"])
        assert snapshot_remote_at(direct, tmp_path / "check-state") == {
            MODEL_FILE: hashlib.sha256(data).hexdigest()
        }
        assert info.size == len(data)
        assert not list((tmp_path / "state").rglob("*.json*"))  # no journal left
        case.faults_injected = 1
        case.lost_bytes = 0
        case.verified = (
            f"{fault_proxy.body_bytes >> 20} MiB sent for a {len(data) >> 20} MiB file; "
            "the object's sha256 equals the file's; no journal left"
        )
