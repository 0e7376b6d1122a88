"""Concurrency: two `run`s on one machine (one waits out with exit 4), a lock left by a process
killed with SIGKILL (taken over with a warning), and two machines pushing to one remote at once
(the remote catalog's compare-and-swap keeps both machines' entries)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from providers import open_provider
from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_dir,
    snapshot_dir,
    snapshot_remote,
    stray_temps,
)
from tests.support import SyncProject, cli_env, run_subprocess, start_subprocess, write_checkpoint

HOLDER = """
import sys
from pathlib import Path
from agent.local.lock import Lock
lock = Lock(Path(sys.argv[1]), "test holder").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_run_is_told_who_holds_the_lock_and_stale_locks_are_taken_over(ledger, project):
    with ledger.case(
        fault="stale lock: the holder was killed with SIGKILL",
        where="a process holding .model-safety/lock, then kill -9",
        user_sees="while alive: exit 4 naming its pid and command; after: 'stale lock' warning, "
        "the run proceeds",
    ) as case:
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(project.models / ".model-safety")],
            env=cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "locked"
            blocked = run_subprocess(["run"], project.root)
            assert blocked.returncode == 4
            assert f"pid {holder.pid}" in blocked.stderr and "test holder" in blocked.stderr
            assert not list(project.models.glob("*_v*"))  # the blocked run did nothing
        finally:
            holder.kill()  # SIGKILL: the holder never gets to clean up its note
            holder.wait(timeout=30)
        after = run_subprocess(["run"], project.root)
        assert after.returncode == 0, after.stderr
        assert "stale lock" in after.stderr and str(holder.pid) in after.stderr
        assert list(project.models.glob("dinesh_ai_model_v*.pth"))
        case.transfers_completed += 1
        case.lost_bytes = lost_bytes(before, {"local": snapshot_dir(project.models)}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        case.verified = "blocked run wrote nothing; next run made a version; sources intact"


def test_two_overlapping_runs_never_both_write(ledger, project):
    """Two real `run` processes started together: every outcome is either success or the lock
    exit code, and exactly one dated version exists afterwards."""
    with ledger.case(
        fault="two `run`s on one machine at once",
        where="two agent processes started together on one models dir",
        user_sees="one succeeds, the other exits 4 naming the holder (or runs after it)",
    ) as case:
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        procs = [start_subprocess(["run"], project.root) for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert all(code in (0, 4) for code, _ in results), results
        blocked = [err for code, err in results if code == 4]
        assert all("holds the lock" in err for err in blocked), blocked
        assert len(list(project.models.glob("dinesh_ai_model_v*.pth"))) == 1
        case.transfers_completed += sum(code == 0 for code, _ in results)
        case.lost_bytes = lost_bytes(before, {"local": snapshot_dir(project.models)}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        case.verified = f"exit codes {sorted(c for c, _ in results)}; exactly one version"


def machine(tmp_path: Path, name: str, remote: dict, seed: int) -> SyncProject:
    """A second 'machine': its own project dir and its own model, same remote."""
    proj = SyncProject.create(tmp_path / name, remote)
    file = f"{name}_model.pth"
    proj.write_config(models=[{"name": f"{name}_model", "file": file}])
    proj.models.mkdir()
    write_checkpoint(proj.models / file, seed=seed)
    done = run_subprocess(["backup", "--kind", "version"], proj.root)
    assert done.returncode == 0, done.stderr
    return proj


@pytest.mark.parametrize("kind", ["local", "s3_seaweedfs"])
def test_two_machines_push_to_one_remote_at_once(ledger, tmp_path, request, kind):
    settings = request.getfixturevalue(f"{kind}_settings")
    with ledger.case(
        fault=f"two machines push to one {kind.split('_')[0]} remote at once",
        where="two project dirs, two `push` processes started together",
        user_sees="both pushes exit 0",
    ) as case:
        machines = [machine(tmp_path, n, settings, seed) for seed, n in enumerate(("ma", "mb"))]
        before = {m.root.name: snapshot_dir(m.models) for m in machines}
        sizes = {k: v for m in machines for k, v in sizes_dir(m.models).items()}
        procs = [start_subprocess(["push"], m.root) for m in machines]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert [code for code, _ in results] == [0, 0], results
        case.transfers_completed += 2
        provider = open_provider("r", settings, state_dir=tmp_path / "check-state")
        try:
            remote = snapshot_remote(provider)
            catalog = json.loads(provider.capabilities.get_bytes(".model-safety/catalog.json")[0])
        finally:
            provider.close()
        local_names = set(before["ma"]) | set(before["mb"])
        assert local_names <= set(catalog["files"]), (local_names, sorted(catalog["files"]))
        for m in machines:
            for name, sha in before[m.root.name].items():
                assert remote[name] == sha
                assert catalog["files"][name]["sha256"] == sha
        case.lost_bytes = lost_bytes(before, {"remote": remote}, sizes)
        assert case.lost_bytes == 0
        for m in machines:
            assert stray_temps(m.models) == [] and leftover_journals(m.models) == []
        case.verified = (
            f"{len(local_names)} files of both machines in the remote and its catalog, sha256 equal"
        )
