"""Store API used by the sync agent (adopt, prune pins), the catalog format, the structural check,
and restore when the catalog had to be rebuilt."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil

import pytest

from agent.checks.runner import check_file
from agent.config import load_config
from agent.errors import AgentError, LockHeld
from agent.local.backup import backup_model
from agent.local.catalog import Catalog, Entry
from agent.local.lock import Lock
from agent.local.prune import prune_local
from agent.local.store import Store
from agent.rules.naming import version_name
from tests.support import MODEL_FILE, TOKENIZER, write_checkpoint


@pytest.fixture
def store(project) -> Store:
    return Store(load_config(project.config))


def test_entry_round_trips_through_json():
    entry = Entry(
        name="m_v2024-03-04.2.pth",
        model="m",
        kind="version",
        date=dt.date(2024, 3, 4),
        seq=2,
        created=dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC),
        size=10,
        sha256="a" * 64,
        note="n",
        source="run",
        companions={"tok.json": "tok_v2024-03-04.2.json"},
        md5="b" * 32,
    )
    assert Entry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry


def test_adopt_registers_a_pulled_version_with_its_companions(project, store):
    day = dt.date(2023, 1, 2)
    pulled = project.models / version_name(MODEL_FILE, day)
    write_checkpoint(pulled, seed=9)
    (project.models / version_name(TOKENIZER, day)).write_text('{"pulled": 1}')
    store.adopt(project.models / version_name(TOKENIZER, day), source="pull:nas")
    entry = store.adopt(pulled, source="pull:nas", note="from nas")
    assert (entry.kind, entry.date, entry.source) == ("version", day, "pull:nas")
    assert entry.companions == {TOKENIZER: version_name(TOKENIZER, day)}
    # A fresh store (as the next command would) sees it as an intact version.
    states = Store(load_config(project.config)).versions()
    assert [(s.entry.name, s.state) for s in states] == [(pulled.name, "ok")]
    with pytest.raises(AgentError, match="not a backup or version name"):
        store.adopt(project.models / MODEL_FILE)


def test_adopt_trusts_a_hash_verified_by_the_caller(project, store):
    pulled = project.models / version_name(MODEL_FILE, dt.date(2023, 1, 2))
    write_checkpoint(pulled, seed=9)
    entry = store.adopt(pulled, sha256="0" * 64)  # a lie, to show it is not re-read
    assert entry.sha256 == "0" * 64
    assert store.verify()[0].state == "corrupted"  # verify re-reads and catches it


def test_prune_keeps_pinned_versions(project, store):
    names = []
    for seed, day in enumerate([1, 2, 3, 4, 5], start=2):
        project.write_model(seed=seed)
        names.append(
            backup_model(store, kind="version", today=dt.date(2024, 1, day)).entries[-1].name
        )
    store.config = dataclasses.replace(store.config, max_backups=2)
    decisions = {d.name: d for d in prune_local(store, pins={names[0]: "not on any remote yet"})}
    assert decisions[names[0]].keep and "not on any remote yet" in decisions[names[0]].reasons
    assert not decisions[names[1]].keep and not decisions[names[2]].keep
    assert (project.models / names[0]).exists() and not (project.models / names[1]).exists()
    assert not (project.models / version_name(TOKENIZER, dt.date(2024, 1, 2))).exists()


def test_rebuilt_catalog_skips_a_truncated_checkpoint_on_restore(cli, project, store):
    project.write_model(seed=2)
    backup_model(store, kind="version", today=dt.date(2024, 1, 1))
    good = project.model().read_bytes()
    project.write_model(seed=3)
    newest = backup_model(store, kind="version", today=dt.date(2024, 1, 2)).entries[-1].name
    shutil.rmtree(project.models / ".model-safety")  # catalog and hash cache lost
    damaged = project.models / newest
    damaged.write_bytes(damaged.read_bytes()[:4000])  # and the newest version truncated
    project.model().unlink()
    result = cli("restore", "--yes")
    assert result.code == 0, result.err
    assert f"skipped {newest}: fails the check (truncated" in result.err
    assert project.model().read_bytes() == good


def test_structural_check(tmp_path, checkpoint):
    import torch

    verdict = check_file(checkpoint)
    assert verdict.ok and verdict.tensors["0.weight"] == ["float32", [64, 32]]
    nan = tmp_path / "nan.pth"
    torch.save({"w": torch.tensor([1.0, float("nan")])}, nan)
    assert "NaN" in (check_file(nan).reason or "")
    pickled = tmp_path / "code.pth"
    torch.save({"w": torch.zeros(1), "obj": Catalog}, pickled)  # not weights-only loadable
    assert "agent.local.catalog.Catalog" in (check_file(pickled).reason or "")
    notes = tmp_path / "notes.pth"
    notes.write_text("not a checkpoint")
    assert "not a torch checkpoint" in (check_file(notes).reason or "")


def test_lock_in_process(tmp_path):
    with Lock(tmp_path, "first") as held:
        assert held.held
        with pytest.raises(LockHeld, match="`first`"):
            Lock(tmp_path, "second").acquire()
    with Lock(tmp_path, "third") as again:
        assert again.stale is None  # released cleanly: nothing to take over


def test_catalog_file_is_valid_json_after_each_command(cli, project):
    cli("backup")
    cli("backup", "--kind", "version")
    doc = json.loads((project.models / ".model-safety" / "catalog.json").read_text())
    kinds = sorted((f["kind"], f["companion"] is None) for f in doc["files"])
    assert kinds == [("backup", False), ("backup", True), ("version", False), ("version", True)]
    assert not [p for p in (project.models / ".model-safety").iterdir() if "incomplete" in p.name]


def test_run_makes_a_version_only_when_due_and_changed(project, store):
    from agent.local.hashing import bytes_read
    from agent.local.schedule import run_job

    day = dt.date(2024, 5, 1)
    first = run_job(store, today=day)
    assert any("wrote" in a for a in first.actions)
    assert "next dated version due 2024-05-08" in run_job(store, today=day).actions[0]
    later = dt.date(2024, 5, 9)
    before = bytes_read()
    unchanged = run_job(Store(load_config(project.config)), today=later)
    assert "unchanged since" in unchanged.actions[0]
    assert bytes_read() == before  # decided from the hash cache alone
    project.tokenizer().write_text('{"vocab": "new"}')
    changed = run_job(store, today=later)
    assert any("wrote dinesh_ai_model_v2024-05-09.pth" in a for a in changed.actions)


def test_temps_left_by_a_killed_copy_are_cleaned_but_not_fresh_or_foreign_ones(cli, project):
    import os
    import time

    stale = project.models / f".{MODEL_FILE}.0123456789ab.incomplete"
    fresh = project.models / f".{MODEL_FILE}.ba9876543210.incomplete"
    foreign = project.models / f".{MODEL_FILE}.{'c' * 32}.incomplete"  # a provider's partial
    for path in (stale, fresh, foreign):
        path.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    # Without the lock a fresh temp may be a copy in progress: only the stale one goes.
    Store(load_config(project.config)).remove_stale_temps()
    assert not stale.exists() and fresh.exists()
    # backup holds the lock, so no copy of ours can be in progress: the fresh one goes too
    # (left by a kill -9 a moment ago). A provider's resumable partial download is kept.
    assert cli("backup").code == 0
    assert not fresh.exists() and foreign.exists()
