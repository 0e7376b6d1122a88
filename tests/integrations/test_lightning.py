"""The Lightning callback in real Lightning runs on CPU: an improving run is versioned and pushed,
a worsening one rolled back, a killed one recoverable, and a dead remote never stops training."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integrations import lit
from tests.servers.seaweed import free_ports
from tests.support import cli_env


def _keys(seaweedfs, prefix: str) -> set[str]:
    listing = seaweedfs.client().list_objects_v2(Bucket=seaweedfs.bucket, Prefix=prefix + "/")
    return {o["Key"].removeprefix(prefix + "/") for o in listing.get("Contents", [])}


def test_an_improving_run_is_versioned_and_pushed_to_each_remote(lit_project, nas, seaweedfs, ms):
    s3 = seaweedfs.settings()
    lit_project.write_config(
        {"name": "dinesh_ai_model", "file": "dinesh_ai_model.pth"},
        {"nas": {"type": "local", "path": str(nas)}, "s3": s3},
    )
    before = lit_project.model.read_bytes()

    safety = lit.fit(lit_project.root, epochs=3, metric="val_loss", max_regression=0.05)

    assert safety.result.outcome == "accepted", safety.result.message
    current = lit_project.model.read_bytes()
    assert current != before
    assert (lit_project.models / "dinesh_ai_model_backup.pth").read_bytes() == before
    # the first checkpoint became a version (none was due before it), the accepted result another
    versions = lit_project.names("dinesh_ai_model_v*.pth")
    assert len(versions) == 2, versions
    held = sorted((lit_project.models / v).read_bytes() == current for v in versions)
    assert held == [False, True]
    assert before not in {(lit_project.models / v).read_bytes() for v in versions}
    # both remotes hold everything, the result included; no push failed
    assert {p.remote for p in safety.pushes} == {"nas", "s3"}
    assert all(p.ok for p in safety.pushes), safety.pushes
    for name in [*versions, "dinesh_ai_model.pth", "dinesh_ai_model_backup.pth"]:
        assert (nas / name).read_bytes() == (lit_project.models / name).read_bytes()
        assert name in _keys(seaweedfs, s3["prefix"])
    assert ms(lit_project.root, "verify", "--remote", "s3").code == 0
    assert ms(lit_project.root, "verify", "--remote", "nas").code == 0


def test_a_run_that_gets_worse_is_rolled_back(lit_project, nas, ms):
    before = lit_project.model.read_bytes()

    # every step climbs the loss: the last val_loss is worse than the first one of the run
    worse = lit.fit(lit_project.root, epochs=2, ascent=True, metric="val_loss", max_regression=0.0)

    assert worse.result.outcome == "rolled-back"
    assert "val_loss" in worse.result.message  # says why
    assert lit_project.model.read_bytes() == before
    (kept,) = lit_project.names("dinesh_ai_model_replaced-*.pth")
    assert (lit_project.models / kept).read_bytes() != before
    # the remote's current file is the restored model again
    assert (nas / "dinesh_ai_model.pth").read_bytes() == before
    assert ms(lit_project.root, "verify").code == 0


def test_a_run_that_raises_is_rolled_back_and_releases_the_lock(lit_project, ms):
    before = lit_project.model.read_bytes()

    with pytest.raises(RuntimeError, match="simulated"):
        lit.fit(lit_project.root, epochs=3, crash_at=1, push=False)

    assert lit_project.names("dinesh_ai_model_v*.pth")  # epoch 0's checkpoint had been recorded
    assert lit_project.model.read_bytes() == before
    assert ms(lit_project.root, "backup").code == 0  # the lock is free again (held: exit 4)


def test_a_run_killed_mid_training_leaves_the_pre_update_model_recoverable(lit_project, ms):
    before = lit_project.model.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, str(Path(lit.__file__)), str(lit_project.root), "100000"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    try:
        # kill once a checkpoint has replaced the model (its version is made right after)
        while not lit_project.names("dinesh_ai_model_v*.pth") and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint was recorded"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert lit_project.model.read_bytes() != before  # the run had changed the model

    # intact: the pre-update copy holds the model as it was, and checks out
    assert (lit_project.models / "dinesh_ai_model_backup.pth").read_bytes() == before
    assert ms(lit_project.root, "verify").code == 0
    # recoverable: the next run finds the killed one's marker and rolls back before its backup
    # (by hand: `model-safety restore --from backup`)
    safety = lit.fit(lit_project.root, epochs=1, push=False)
    assert any("never finished" in w for w in safety.result.warnings), safety.result.warnings
    assert (lit_project.models / "dinesh_ai_model_backup.pth").read_bytes() == before


def test_a_remote_that_is_down_does_not_stop_training(lit_project, nas, seaweedfs, caplog):
    (closed,) = free_ports(1)  # nothing listens there
    down = seaweedfs.settings(
        endpoint_url=f"http://127.0.0.1:{closed}",
        retry={"attempts": 2, "initial_wait": 0.1, "max_wait": 0.2, "jitter": 0},
    )
    lit_project.write_config(
        {"name": "dinesh_ai_model", "file": "dinesh_ai_model.pth"},
        {"nas": {"type": "local", "path": str(nas)}, "s3": down},
    )
    before = lit_project.model.read_bytes()
    caplog.set_level(logging.WARNING, logger="agent.integrations")

    safety = lit.fit(lit_project.root, epochs=3, metric="val_loss", max_regression=0.05)

    assert safety.result.outcome == "accepted", safety.result.message
    assert lit_project.model.read_bytes() != before  # training ran to its end
    failed = [p for p in safety.pushes if p.remote == "s3"]
    assert failed and not any(p.ok for p in failed)
    assert any("push to s3 failed" in r.getMessage() for r in caplog.records)
    # the remote that is up got the result all the same
    assert (nas / "dinesh_ai_model.pth").read_bytes() == lit_project.model.read_bytes()
