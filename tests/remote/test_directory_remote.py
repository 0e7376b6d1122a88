"""Directory models on real remotes (local disk, SeaweedFS S3, the Drive emulator), through the
CLI: a directory version is pushed file by file with its manifest written last, a shard the
remote already holds is copied there instead of sent, and pull brings whole directories back
onto an empty machine, every file checked against the manifest."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from agent.remote import catalog as remote_catalog
from providers import open_provider
from tests.dirsupport import SHARD1, SHARD2, DirProject, hf_state, temp_dirs, tree_digest, write_hf


def today() -> str:
    """Asked at each use, not once at import: a run that crosses midnight names its versions
    with the new date."""
    return dt.date.today().isoformat()


def v1() -> str:
    return f"llama-ft_v{today()}"


def v2() -> str:
    return f"{v1()}.2"


@pytest.fixture
def dproj(tmp_path, request, remote_kind) -> DirProject:
    settings = request.getfixturevalue(f"{remote_kind}_settings")
    proj = DirProject.create(tmp_path / "proj", remotes={"r": settings})
    proj.settings = settings  # type: ignore[attr-defined]
    write_hf(proj.current, seed=1, rows=256)
    return proj


def trees_on(proj: DirProject) -> dict:
    provider = open_provider("check", dict(proj.settings), state_dir=proj.root / "check")  # type: ignore[attr-defined]
    try:
        return remote_catalog.load(provider).trees
    finally:
        provider.close()


def test_push_then_pull_onto_an_empty_machine(dproj, ms):
    proj = dproj
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "backup").code == 0
    pushed = ms(proj.root, "push", "--json")
    assert pushed.code == 0, pushed.err
    trees = trees_on(proj)
    assert set(trees) == {"llama-ft", "llama-ft_backup", v1()}
    assert {p: f["sha256"] for p, f in trees[v1()]["files"].items()} == tree_digest(proj.current)
    want = {n: tree_digest(proj.copy(n)) for n in ("llama-ft", "llama-ft_backup", v1())}

    shutil.rmtree(proj.models)  # the disk died; only config.yaml is left
    pulled = ms(proj.root, "pull", "--version", "all")
    assert pulled.code == 0, pulled.err
    assert {n: tree_digest(proj.copy(n)) for n in want} == want
    assert ms(proj.root, "verify").code == 0
    assert temp_dirs(proj.models) == []
    listed = json.loads(ms(proj.root, "list", "--remote", "r", "--json").out)
    assert {r["name"] for r in listed["files"]} >= {"llama-ft/", "llama-ft_backup/", f"{v1()}/"}
    assert ms(proj.root, "verify", "--remote", "r").code == 0


def test_a_shard_the_remote_holds_is_copied_there_not_sent(dproj, ms):
    proj = dproj
    ms(proj.root, "backup", "--kind", "version")
    assert ms(proj.root, "push").code == 0
    # a fine-tune that changes only the second shard's values (same shapes)
    first, second = hf_state(1, rows=256)
    second = {k: v * 0.5 for k, v in second.items()}
    write_hf(proj.current, shards=(first, second))
    (proj.current / "config.json").write_text(json.dumps({"model_type": "llama", "seed": 1}))
    (proj.current / "tokenizer.json").write_text(json.dumps({"vocab": ["a", "b"], "seed": 1}))
    ms(proj.root, "backup", "--kind", "version")
    (status,) = json.loads(ms(proj.root, "status", "--json").out)["remotes"]
    assert f"{v2()}/" in status["would_push"]  # what a push would send, before it does
    result = ms(proj.root, "push", "--json")
    assert result.code == 0, result.err
    (report,) = json.loads(result.out)
    moved = {t["name"]: t for t in report["transfers"]}
    assert moved[f"{v2()}/{SHARD2}"]["action"] == "upload"
    if moved[f"{v2()}/{SHARD1}"]["action"] == "copy":
        assert moved[f"{v2()}/{SHARD1}"]["bytes_sent"] == 0
    else:  # a backend without server-side copy sends it (Drive's emulator may lack copy)
        pytest.skip("this backend cannot copy on the server")
    assert report["bytes_copied"] >= (proj.current / SHARD1).stat().st_size
    assert v2() in trees_on(proj)


def test_remote_retention_removes_whole_directory_versions(tmp_path, ms, local_settings):
    settings = {**local_settings, "retention": {"keep_last": 2}}
    proj = DirProject.create(tmp_path / "proj", remotes={"r": settings})
    proj.settings = settings  # type: ignore[attr-defined]
    for seed in range(3):
        write_hf(proj.current, seed=20 + seed)
        assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    V3 = f"llama-ft_v{today()}.3"
    assert {v1(), v2(), V3} <= set(trees_on(proj))
    pruned = ms(proj.root, "prune", "--remote", "r", "--json")
    assert pruned.code == 0, pruned.err
    trees = trees_on(proj)
    assert v1() not in trees and {v2(), V3} <= set(trees)
    remote_root = proj.root.parent / "nas" / "model-backups"
    assert not (remote_root / v1()).exists() or not any((remote_root / v1()).iterdir())
    # the next push does not send back what the remote's own retention removed
    again = ms(proj.root, "push", "--json")
    assert again.code == 0 and v1() not in trees_on(proj)
    # and local retention no longer pins the version as "on no remote"
    listed = ms(proj.root, "prune", "--dry-run", "--json")
    assert "not on any remote" not in listed.out


def test_a_rotten_shard_on_the_remote_is_found_and_healed(dproj, ms, request, remote_kind):
    from tests.remote.damage import flip_remote_object

    proj = dproj
    ms(proj.root, "backup", "--kind", "version")
    assert ms(proj.root, "push").code == 0
    flip_remote_object(request, remote_kind, proj.settings, f"{v1()}/{SHARD1}")  # type: ignore[attr-defined]
    found = ms(proj.root, "verify", "--remote", "r", "--deep")
    assert found.code == 3 and SHARD1 in found.out, found.out
    healed = ms(proj.root, "repair", "--remote", "r", "--deep")
    assert healed.code == 0, healed.out + healed.err
    assert ms(proj.root, "verify", "--remote", "r", "--deep").code == 0
    assert v1() in trees_on(proj)


def test_a_damaged_local_directory_version_is_healed_by_repair(tmp_path, ms, local_settings):
    proj = DirProject.create(tmp_path / "proj", remotes={"r": local_settings})
    write_hf(proj.current, seed=1)
    ms(proj.root, "backup", "--kind", "version")
    assert ms(proj.root, "push").code == 0
    good = tree_digest(proj.copy(v1()))
    write_hf(proj.current, seed=2)  # the current no longer holds the version's shards
    (proj.copy(v1()) / SHARD1).write_bytes(b"rot")
    (proj.copy(v1()) / "config.json").unlink()
    assert ms(proj.root, "verify").code == 3
    healed = ms(proj.root, "repair")
    assert healed.code == 0, healed.out + healed.err
    assert tree_digest(proj.copy(v1())) == good
    assert f"{v1()}/{SHARD1}: healed here (from " in healed.out and " on r)" in healed.out
    assert ms(proj.root, "verify").code == 0


def test_sync_and_run_mirror_directory_versions(tmp_path, ms, local_settings):
    settings = {**local_settings, "auto_push": True}
    proj = DirProject.create(tmp_path / "proj", remotes={"r": settings})
    proj.settings = settings  # type: ignore[attr-defined]
    write_hf(proj.current, seed=1)
    ran = ms(proj.root, "run")  # the periodic job: a dated version, pushed to auto_push remotes
    assert ran.code == 0, ran.out + ran.err
    assert v1() in trees_on(proj)
    write_hf(proj.current, seed=2)
    ms(proj.root, "backup", "--kind", "version")
    synced = ms(proj.root, "sync")
    assert synced.code == 0, synced.out + synced.err
    assert {v1(), v2()} <= set(trees_on(proj))
