"""The sync agent under real process signals: the daemon's clean stop on SIGTERM, and a clean push
aborting the multipart upload a killed one abandoned. (kill -9 mid-push and mid-pull resume:
tests/reliability/test_crash_transfer.py.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest

from tests.support import (
    MODEL_FILE,
    SyncProject,
    agent_cli,
    cli_env,
    kill_agent_when,
    model_safety_cmd,
    start_subprocess,
)


def big_checkpoint(path, mb: int = 64) -> bytes:
    import torch

    torch.manual_seed(5)
    n = mb * 1024 * 1024 // 4
    torch.save({"weight": torch.randn(n // 1024, 1024)}, path)
    return path.read_bytes()


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])  # a service manager; Ctrl-C (Windows too)
def test_daemon_runs_the_job_and_stops_cleanly_on_a_stop_signal(tmp_path, local_settings, stop):
    proj = SyncProject.create(tmp_path / "proj", local_settings)
    root = proj.root
    proj.write_model(seed=2)
    daemon = subprocess.Popen(
        [*model_safety_cmd(), "daemon", "--every", "24", "--now"],
        cwd=root,
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        while not any("run 1 finished" in line for line in lines):
            assert time.monotonic() < deadline and daemon.poll() is None, "".join(lines)
            lines.append(daemon.stderr.readline())
        daemon.send_signal(getattr(signal, stop))
        _, rest = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    log = "".join(lines) + rest
    assert daemon.returncode == 0, log
    assert "run 1 finished with exit code 0" in log
    assert f"{stop} received" in log and "stopped after 1 run(s)" in log
    pushed = {p.name for p in (tmp_path / "nas" / "model-backups").iterdir()}
    assert MODEL_FILE in pushed
    assert any(n.startswith("dinesh_ai_model_v") for n in pushed)


@pytest.mark.slow
def test_clean_push_aborts_multipart_uploads_a_killed_run_abandoned(tmp_path, seaweedfs):
    """A push killed mid-upload leaves a multipart upload on S3 (billed until aborted). If that
    file is gone by the next push, nothing will ever resume it: the next clean push aborts it."""
    settings = seaweedfs.settings()
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.models.mkdir()
    big_checkpoint(proj.models / MODEL_FILE, mb=48)
    (proj.models / "tokenizer.json").write_text("{}")
    backup = agent_cli(proj.root, "backup", "--kind", "version", timeout=120)
    assert backup.returncode == 0, backup.stderr
    (version,) = proj.models.glob("dinesh_ai_model_v*.pth")
    journal = proj.models / ".model-safety" / "remotes" / "r" / "uploads"
    kill_agent_when(
        proj.root, "push", reached=lambda: journal.is_dir() and any(journal.glob("*.jsonl"))
    )
    client = seaweedfs.client()
    uploads = client.list_multipart_uploads(Bucket=settings["bucket"], Prefix=settings["prefix"])
    assert uploads.get("Uploads"), "the killed push left no multipart upload to clean up"

    version.unlink()  # the user deleted that version before the next push
    second = agent_cli(proj.root, "push")
    assert second.returncode == 0, second.stderr
    assert "aborted 1 abandoned upload(s)" in second.stdout
    uploads = client.list_multipart_uploads(Bucket=settings["bucket"], Prefix=settings["prefix"])
    assert not uploads.get("Uploads")


@pytest.mark.slow
def test_push_after_a_kill_reports_what_it_sent_and_what_it_resumed(
    tmp_path, seaweedfs, fault_proxy
):
    """A push killed mid-upload; the next push's summary counts only the bytes it sent over the
    wire (measured on a loopback proxy) and says how much it resumed."""
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.models.mkdir()
    size = len(big_checkpoint(proj.models / MODEL_FILE, mb=40))
    (proj.models / "tokenizer.json").write_text("{}")
    kill_agent_when(proj.root, "push", reached=lambda: fault_proxy.body_bytes >= size * 0.6)
    assert fault_proxy.body_bytes < size, "the push finished before it could be killed"

    fault_proxy.clear()
    second = agent_cli(proj.root, "push", "--json")
    assert second.returncode == 0, second.stderr
    on_the_wire = fault_proxy.body_bytes  # parts, the tokenizer and the remote catalog
    (report,) = json.loads(second.stdout)
    sent, resumed = report["bytes_sent"], report["bytes_resumed"]
    assert sent <= on_the_wire < size, report
    assert resumed >= size * 0.4, report  # at least the parts done before the kill
    assert sent + resumed >= size, report
    (line,) = [d for d in report["done"] if MODEL_FILE in d]
    assert "resumed from an earlier upload" in line, line


def test_daemon_logs_each_line_when_it_happens(tmp_path, local_settings):
    """The daemon's lines are logged (and time-stamped) as the work happens, not all at the end
    of the run: killed right after its uploads, before the run could finish, it has already
    logged the version it wrote and each upload, each with its own stamp."""
    proj = SyncProject.create(tmp_path / "proj", local_settings)
    proj.write_model(seed=2)
    daemon = start_subprocess(
        ["daemon", "--every", "24", "--now"],
        proj.root,
        MODEL_SAFETY_TEST_CRASH_AT="remote-catalog-write",
    )
    _, err = daemon.communicate(timeout=120)
    assert daemon.returncode == -signal.SIGKILL, err
    assert "run 1 started" in err and "run 1 finished" not in err
    stamped = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (.*)$")
    logged = [m.group(1) for m in map(stamped.match, err.splitlines()) if m]
    assert any(line.startswith("dinesh_ai_model: wrote dinesh_ai_model_v") for line in logged), err
    # the current file holds the version's bytes: copied on the remote, not sent again
    assert any(line.endswith(f"-> {MODEL_FILE} on r") for line in logged), err
