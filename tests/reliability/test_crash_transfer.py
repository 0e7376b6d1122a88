"""kill -9 of a real CLI process in the middle of a transfer, chosen by byte count on a loopback
proxy in front of SeaweedFS: a multipart push (5 MiB parts) and a pull after the disk died. The
same command run again sends/fetches only what is missing and the bytes come out identical."""

from __future__ import annotations

import contextlib
import shutil

import pytest

from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_dir,
    snapshot_dir,
    snapshot_remote_at,
    stray_temps,
)
from tests.remote.test_processes import big_checkpoint
from tests.support import MODEL_FILE, SyncProject, agent_cli, kill_agent_when

# 5 MiB parts, 4 in flight: more than 4 must be done at 60% of the bytes to show a resume.
PUSH_MB, PULL_MB = 64, 32


@pytest.mark.slow
def test_kill_9_during_push_then_push_sends_only_what_is_missing(
    ledger, tmp_path, seaweedfs, fault_proxy
):
    with ledger.case(
        fault="kill -9 during a multipart push",
        where="agent process, SIGKILL after 60% of the bytes reached the S3 server (SeaweedFS)",
        user_sees="the process dies; the next `push` resumes the upload, sending only the "
        "parts that had not arrived",
    ) as case:
        settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
        proj = SyncProject.create(tmp_path / "proj", settings)
        root = proj.root
        proj.models.mkdir()
        data = big_checkpoint(proj.models / MODEL_FILE, mb=PUSH_MB)
        size = len(data)
        (proj.models / "tokenizer.json").write_text("{}")
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)

        kill_agent_when(root, "push", reached=lambda: fault_proxy.body_bytes >= size * 0.6)
        sent_before_kill = fault_proxy.body_bytes
        assert sent_before_kill < size, "the push finished before it could be killed"

        fault_proxy.clear()
        second = agent_cli(root, "push")
        assert second.returncode == 0, second.stderr
        case.transfers_completed += 1
        resent = fault_proxy.body_bytes
        # Parts that reached the server before the kill are not sent again; only the parts in
        # flight at the kill (at most max_request_concurrency of them) may have to be.
        in_flight = settings["max_request_concurrency"] * settings["multipart_chunksize"]
        assert resent < size, (resent, size)
        assert resent <= size - sent_before_kill + in_flight + 64 * 1024, (resent, sent_before_kill)

        direct = seaweedfs.settings(prefix=settings["prefix"])
        remote = snapshot_remote_at(direct, tmp_path / "check-state")
        assert remote == before["local"]
        uploads = seaweedfs.client().list_multipart_uploads(
            Bucket=settings["bucket"], Prefix=settings["prefix"]
        )
        assert not uploads.get("Uploads"), "the resumed upload left a multipart upload open"
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []

        other = SyncProject.create(tmp_path / "restored", settings)
        pulled = agent_cli(other.root, "pull")
        assert pulled.returncode == 0, pulled.stderr
        case.transfers_completed += 1
        assert (other.models / MODEL_FILE).read_bytes() == data
        case.lost_bytes = lost_bytes(before, {"remote": remote}, sizes)
        assert case.lost_bytes == 0
        case.verified = (
            f"remote == local ({len(remote)} objects, sha256); re-sent {resent >> 20} of "
            f"{size >> 20} MiB; no open multipart upload, journal or temp; a fresh pull matches"
        )


@pytest.mark.slow
def test_kill_9_during_pull_then_pull_fetches_only_what_is_missing(
    ledger, tmp_path, seaweedfs, fault_proxy
):
    with ledger.case(
        fault="kill -9 during a pull (disaster recovery)",
        where="agent process, SIGKILL once half the ranges from S3 (SeaweedFS) are journaled",
        user_sees="the process dies; the next `pull` fetches only the missing ranges",
    ) as case:
        settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
        proj = SyncProject.create(tmp_path / "proj", settings)
        proj.models.mkdir()
        data = big_checkpoint(proj.models / MODEL_FILE, mb=PULL_MB)
        size = len(data)
        (proj.models / "tokenizer.json").write_text("{}")
        pushed = agent_cli(proj.root, "push")
        assert pushed.returncode == 0, pushed.stderr
        direct = seaweedfs.settings(prefix=settings["prefix"])
        before = {"remote": snapshot_remote_at(direct, tmp_path / "check-state")}
        sizes = sizes_dir(proj.models)
        shutil.rmtree(proj.models)  # the disk died

        downloads = proj.models / ".model-safety" / "remotes" / "r" / "downloads"
        rsize = settings["multipart_chunksize"]
        n_ranges = -(-size // rsize)

        def journaled() -> int:
            """Ranges the journal records as written (the file's marks, torn line ignored)."""
            marks = 0
            for f in downloads.glob("*.jsonl") if downloads.is_dir() else []:
                with contextlib.suppress(FileNotFoundError):  # a finished pull removes it
                    marks += f.read_bytes().count(b'{"m"')
            return marks

        # The model's ranged GETs past the first half wait at the proxy, so the pull cannot end
        # before it is killed, however fast or slow this machine is at the moment.
        fault_proxy.add("stall", method="GET", path_contains=MODEL_FILE, after=n_ranges // 2,
                        limit=n_ranges)  # fmt: skip
        kill_agent_when(proj.root, "pull", reached=lambda: journaled() >= n_ranges // 2)
        kept = journaled()
        assert 0 < kept < n_ranges, "the pull finished before it could be killed"
        assert not (proj.models / MODEL_FILE).exists()

        fault_proxy.clear()
        second = agent_cli(proj.root, "-v", "pull")
        assert second.returncode == 0, second.stderr
        case.transfers_completed += 1
        refetched = fault_proxy.response_bytes
        # The ranges journaled before the kill are not fetched again (the tokenizer and the
        # catalog are a few KB).
        assert refetched <= size - kept * rsize + 64 * 1024, (refetched, kept, second.stderr)
        assert (proj.models / MODEL_FILE).read_bytes() == data
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []
        after = {
            "local": snapshot_dir(proj.models),
            "remote": snapshot_remote_at(direct, tmp_path / "check-state"),
        }
        case.lost_bytes = lost_bytes(before, after, sizes)
        assert case.lost_bytes == 0
        case.verified = (
            f"pulled file sha256 equal; {kept} of {n_ranges} ranges kept, re-fetched "
            f"{refetched >> 20} of {size >> 20} MiB; "
            "no temp or download journal left"
        )
