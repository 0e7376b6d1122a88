"""The sync agent end to end through the CLI, on real servers: local disk, SeaweedFS (S3 with
authentication on) and the Drive v2 emulator."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from agent.remote import catalog as remote_catalog
from tests.remote.damage import flip_remote_object
from tests.support import (
    MODEL_FILE,
    TOKENIZER,
    SyncProject,
    agent_cli,
    cli_env,
    model_safety_cmd,
)

MONDAY = dt.date(2026, 1, 5)


def remote_names(ms, proj) -> set[str]:
    res = ms(proj.root, "list", "--remote", "r", "--json")
    assert res.code == 0, res.err
    return {row["name"] for row in json.loads(res.out)["files"]}


def test_weekly_overnight_flow_keeps_more_on_the_remote(sync_project, ms):
    """Six simulated weeks of `run` from cron: a dated version each week, pushed overnight;
    local retention keeps 2, the remote keeps 4, and the current file is always mirrored."""
    proj = sync_project
    proj.write_config(max_backups=2, retention={"keep_last": 4})
    weekly = {}
    for week in range(6):
        day = MONDAY + dt.timedelta(weeks=week)
        weekly[day] = proj.write_model(seed=week + 10)
        res = ms(proj.root, "run", "--today", day.isoformat())
        assert res.code == 0, res.out + res.err
        # an hourly cron run later the same day changes nothing and sends nothing
        again = ms(proj.root, "run", "--today", day.isoformat(), "--json")
        assert again.code == 0, again.err
        assert all(r["bytes_sent"] == 0 for r in json.loads(again.out)["remotes"])

    days = sorted(weekly)
    local = {p.name for p in proj.models.glob("dinesh_ai_model_v*.pth")}
    assert local == {f"dinesh_ai_model_v{d}.pth" for d in days[-2:]}
    on_remote = remote_names(ms, proj)
    expected_versions = {f"dinesh_ai_model_v{d}.pth" for d in days[-4:]}
    assert {n for n in on_remote if n.startswith("dinesh_ai_model_v")} == expected_versions
    assert {f"tokenizer_v{d}.json" for d in days[-4:]} <= on_remote
    assert {MODEL_FILE, TOKENIZER} <= on_remote
    # what the remote keeps is what was written that week, byte for byte
    oldest_kept = days[-4]
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull", "--version", oldest_kept.isoformat())
    assert res.code == 0, res.out + res.err
    assert (proj.models / f"dinesh_ai_model_v{oldest_kept}.pth").read_bytes() == weekly[oldest_kept]
    assert (proj.models / MODEL_FILE).read_bytes() == weekly[oldest_kept]
    assert (proj.models / TOKENIZER).read_text() == '{"vocab": "seed 12"}'


def test_disaster_recovery_pull_into_an_empty_machine(sync_project, ms):
    proj = sync_project
    model_bytes = proj.write_model(seed=7)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    res = ms(proj.root, "push")
    assert res.code == 0, res.out + res.err
    tokenizer = (proj.models / TOKENIZER).read_bytes()

    shutil.rmtree(proj.models)  # the disk died: only config.yaml and credentials are left
    res = ms(proj.root, "pull")
    assert res.code == 0, res.out + res.err
    assert (proj.models / MODEL_FILE).read_bytes() == model_bytes
    assert (proj.models / TOKENIZER).read_bytes() == tokenizer
    # the local catalog is rebuilt: everything is verifiable again
    assert ms(proj.root, "verify").code == 0
    res = ms(proj.root, "pull", "--version", "all", "--json")
    assert res.code == 0, res.err
    versions = list(proj.models.glob("dinesh_ai_model_v*.pth"))
    assert len(versions) == 1 and versions[0].read_bytes() == model_bytes


def test_corrupted_local_version_is_never_pushed_and_repair_heals_it(sync_project, ms):
    proj = sync_project
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    version = next(proj.models.glob("dinesh_ai_model_v*.pth"))
    proj.write_model(seed=7)  # the model moved on: only r holds the version's bytes now
    good = version.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01
    version.write_bytes(bytes(flipped))

    res = ms(proj.root, "push")
    assert res.code == 3
    assert version.name in res.err and "not pushed" in res.err
    res = ms(proj.root, "verify", "--remote", "r")
    assert res.code == 0, res.out + res.err  # the remote copy is still the good one

    res = ms(proj.root, "repair")
    assert res.code == 0, res.out + res.err
    assert f"{version.name}: healed here (pulled from {version.name} on r)" in res.out
    assert version.read_bytes() == good
    quarantined = list((proj.models / ".model-safety" / "quarantine").iterdir())
    assert [q.read_bytes() for q in quarantined] == [bytes(flipped)]


def test_current_that_fails_the_check_is_not_pushed(sync_project, ms):
    proj = sync_project
    assert ms(proj.root, "push").code == 0
    good = (proj.models / MODEL_FILE).read_bytes()
    (proj.models / MODEL_FILE).write_bytes(b"PK\x03\x04 not a checkpoint at all" * 100)
    res = ms(proj.root, "push")
    assert res.code == 3
    assert "not pushed: fails the check" in res.err
    shutil.rmtree(proj.models)
    assert ms(proj.root, "pull").code == 0
    assert (proj.models / MODEL_FILE).read_bytes() == good


def test_same_content_under_another_name_is_copied_server_side(sync_project, ms):
    proj = sync_project
    assert ms(proj.root, "push").code == 0  # current + tokenizer go up
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    res = ms(proj.root, "push", "--json")
    assert res.code == 0, res.err
    (report,) = json.loads(res.out)
    copies = [s for s in report["steps"] if s["action"] == "copy"]
    assert {s["name"].split("_v")[0] for s in copies} == {"dinesh_ai_model", "tokenizer"}
    assert report["bytes_sent"] == 0 and report["bytes_copied"] > 0


def test_local_deletion_never_propagates(sync_project, ms):
    proj = sync_project
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    before = remote_names(ms, proj)
    for p in proj.models.glob("*_v*"):
        p.unlink()
    (proj.models / TOKENIZER).unlink()
    assert ms(proj.root, "push").code == 0
    assert remote_names(ms, proj) == before


def test_bit_flip_on_the_remote_is_found_and_repaired(sync_project, ms, remote_kind, request):
    proj = sync_project
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    version = next(proj.models.glob("dinesh_ai_model_v*.pth")).name
    flip_remote_object(request, remote_kind, proj.remote, version)

    deep = ["--deep"] if remote_kind == "s3_seaweedfs" else []
    res = ms(proj.root, "verify", "--remote", "r", *deep)
    assert res.code == 3, res.out + res.err
    assert version in res.out + res.err
    res = ms(proj.root, "repair", "--remote", "r", *deep)
    assert res.code == 0, res.out + res.err
    assert f"{version}: healed on r (corrupted there)" in res.out
    res = ms(proj.root, "verify", "--remote", "r", "--deep")
    assert res.code == 0, res.out + res.err


def test_unsafe_and_foreign_remote_names_are_skipped(ms, tmp_path):
    nas = tmp_path / "nas"
    proj = SyncProject.create(tmp_path / "p", {"type": "local", "path": str(nas)})
    data = proj.write_model(seed=3)
    assert ms(proj.root, "push").code == 0
    (nas / "notes.txt").write_text("not ours")
    (nas / "sub").mkdir()
    (nas / "sub" / MODEL_FILE).write_bytes(b"evil")
    (nas / "..dinesh_ai_model_backup.pth").write_bytes(b"evil")
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull")
    assert res.code == 0, res.out + res.err
    assert "notes.txt" in res.err and "skipped" in res.err
    assert (proj.models / MODEL_FILE).read_bytes() == data
    assert sorted(p.name for p in proj.models.iterdir() if not p.name.startswith(".")) == [
        MODEL_FILE,
        TOKENIZER,
    ]
    assert not (tmp_path / "p" / MODEL_FILE).exists()


def test_pull_without_a_remote_catalog(ms, tmp_path):
    """Files put on a remote by hand (no catalog): pull relies on the names and the provider's
    own checksums."""
    nas = tmp_path / "nas"
    nas.mkdir()
    proj = SyncProject.create(tmp_path / "p", {"type": "local", "path": str(nas)})
    proj.write_model(seed=4)
    by_hand = (proj.models / MODEL_FILE).read_bytes()
    shutil.copy(proj.models / MODEL_FILE, nas / "dinesh_ai_model_v2026-01-05.pth")
    shutil.copy(proj.models / TOKENIZER, nas / "tokenizer_v2026-01-05.json")
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull")
    assert res.code == 0, res.out + res.err
    assert (proj.models / MODEL_FILE).read_bytes() == by_hand
    assert (proj.models / "dinesh_ai_model_v2026-01-05.pth").read_bytes() == by_hand
    assert ms(proj.root, "list", "--json").code == 0


def test_two_agents_pushing_at_once_lose_no_catalog_entry(tmp_path):
    """Compare-and-swap on the remote catalog: many concurrent writers, every entry survives."""
    import threading

    from providers import open_provider

    provider = open_provider("r", {"type": "local", "path": str(tmp_path / "nas")})
    names = [f"m_v2026-01-{d:02d}.pth" for d in range(1, 25)]
    errors = []

    def agent(name: str) -> None:
        try:
            remote_catalog.update(
                provider, lambda cat, n=name: cat.record(n, {"sha256": n, "size": 1})
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(remote_catalog.load(provider).files) == set(names)


@pytest.mark.parametrize("remote_kind", ["s3_seaweedfs", "gdrive_emulator"], indirect=True)
def test_two_agent_processes_push_to_one_remote(sync_project, tmp_path):
    """Two machines (two models dirs, two models) push to one remote at the same time; the
    remote catalog ends up with both machines' files."""
    import subprocess

    import yaml

    projects = []
    for i, model in enumerate(["alpha", "beta"]):
        models = [{"name": model, "file": f"{model}.pth"}]
        p = SyncProject.create(tmp_path / model, sync_project.remote, models=models)
        p.models.mkdir()
        from tests.support import write_checkpoint

        write_checkpoint(p.models / f"{model}.pth", seed=i)
        projects.append(p)
        assert yaml.safe_load(p.config.read_text())
    procs = [
        subprocess.Popen(
            [*model_safety_cmd(), "backup", "--kind", "version"],
            cwd=p.root,
            env=cli_env(),
        )
        for p in projects
    ]
    assert all(proc.wait(60) == 0 for proc in procs)
    procs = [
        subprocess.Popen(
            [*model_safety_cmd(), "push"],
            cwd=p.root,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for p in projects
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
    from agent.config import load_config
    from agent.local.store import Store
    from agent.remote.connect import Remote

    store = Store(load_config(projects[0].config))
    remote = Remote.open(store, store.config.remote("r"))
    files = set(remote.catalog.files)
    remote.close()
    today = dt.date.today().isoformat()
    assert {"alpha.pth", f"alpha_v{today}.pth", "beta.pth", f"beta_v{today}.pth"} <= files
    # each machine verifies its own files and leaves the other's alone
    for p in projects:
        check = agent_cli(p.root, "verify", "--remote", "r", timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr


def test_a_lost_remote_catalog_costs_no_upload(sync_project, ms):
    """Objects that arrived but were never catalogued (a push killed before its catalog write, or
    a catalog deleted by hand) are recognised by their own checksums, not sent again."""
    from providers import open_provider

    proj = sync_project
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    provider = open_provider("r", proj.remote)
    try:
        provider.delete(remote_catalog.CATALOG_KEY)
        res = ms(proj.root, "push", "--json")
        assert res.code == 0, res.err
        (report,) = json.loads(res.out)
        assert report["bytes_sent"] == 0 and report["bytes_copied"] == 0
        assert len(remote_catalog.load(provider).files) == 4  # rebuilt from what is there
    finally:
        provider.close()


def test_content_goes_over_the_wire_once_per_push(sync_project, ms):
    """A new dated version, the backup slot and the current file hold the same bytes: the first
    push sends them once and copies them server-side to the other names, verified."""
    proj = sync_project
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "backup").code == 0
    model = (proj.models / MODEL_FILE).stat().st_size
    tokenizer = (proj.models / TOKENIZER).stat().st_size
    res = ms(proj.root, "push", "--json")
    assert res.code == 0, res.err
    (report,) = json.loads(res.out)
    assert report["bytes_sent"] == model + tokenizer, report
    assert report["bytes_copied"] == 2 * (model + tokenizer), report
    assert ms(proj.root, "verify", "--remote", "r", "--deep").code == 0
