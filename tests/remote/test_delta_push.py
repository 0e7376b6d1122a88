"""Delta push through the CLI: after a partial fine-tune, a push sends only the changed ranges and
copies the others on the remote from the previous version; the remote keeps plain, whole files
that any tool can read. On a local remote and on SeaweedFS."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.remote.damage import flip_remote_object, remote_bytes
from tests.support import MODEL_FILE, SyncProject, write_layered_checkpoint

KINDS = ["local", "s3_seaweedfs"]
LAYER = 4 << 20  # 12 layers of 4 MiB: 48 MiB, six 8 MiB ranges


def ok(ms, root, *args: str):  # type: ignore[no-untyped-def]
    res = ms(root, *args)
    assert res.code == 0, (args, res.out, res.err)
    return res


def tuned_project(tmp_path, request, kind: str) -> tuple[SyncProject, dict]:  # type: ignore[no-untyped-def]
    settings = request.getfixturevalue(f"{kind}_settings")
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER)
    return proj, settings


def push_json(ms, root, *args: str) -> dict:  # type: ignore[no-untyped-def]
    res = ok(ms, root, "push", "--json", *args)
    (report,) = json.loads(res.out)
    return report


@pytest.mark.parametrize("kind", KINDS)
def test_a_partial_fine_tune_sends_only_what_changed(tmp_path, request, ms, kind):
    proj, settings = tuned_project(tmp_path, request, kind)
    ok(ms, proj.root, "backup", "--kind", "version")
    first = push_json(ms, proj.root)
    size = (proj.models / MODEL_FILE).stat().st_size
    assert first["bytes_sent"] >= size  # nothing to reuse yet: sent whole, once

    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=2)
    dry = ok(ms, proj.root, "push", "--dry-run")
    line = next(x for x in dry.out.splitlines() if f"{MODEL_FILE} " in x)
    assert "ranges copied on the remote from" in line, dry.out
    report = push_json(ms, proj.root)
    (moved,) = [t for t in report["transfers"] if t["name"] == MODEL_FILE]
    assert moved["bytes_copied"] > 0 and moved["source"] == MODEL_FILE
    assert moved["bytes_sent"] <= 0.4 * size, moved
    assert moved["bytes_sent"] + moved["bytes_copied"] == size
    # a plain, whole file on the remote, byte for byte the local one
    assert (
        remote_bytes(request, kind, settings, MODEL_FILE) == (proj.models / MODEL_FILE).read_bytes()
    )
    ok(ms, proj.root, "verify", "--remote", "r", "--deep")


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_version_is_assembled_from_the_previous_one(tmp_path, request, ms, kind):
    proj, settings = tuned_project(tmp_path, request, kind)
    ok(ms, proj.root, "backup", "--kind", "version")
    ok(ms, proj.root, "push")
    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=2)
    ok(ms, proj.root, "backup", "--kind", "version")
    report = push_json(ms, proj.root)
    size = (proj.models / MODEL_FILE).stat().st_size
    # the new version is sent as a delta once; the current file, the same bytes, is copied
    sent = {t["name"]: t for t in report["transfers"]}
    new_version = max(n for n in sent if "_v" in n)
    assert sent[new_version]["bytes_copied"] > 0
    assert report["bytes_sent"] <= 0.4 * size, report["transfers"]
    for name in sent:
        assert remote_bytes(request, kind, settings, name) == (proj.models / name).read_bytes()
    ok(ms, proj.root, "verify", "--remote", "r", "--deep")


def test_a_source_rewritten_behind_the_agent_costs_a_plain_upload(tmp_path, request, ms):
    proj, settings = tuned_project(tmp_path, request, "s3_seaweedfs")
    ok(ms, proj.root, "push")
    flip_remote_object(request, "s3_seaweedfs", settings, MODEL_FILE)  # same metadata
    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=2)
    report = push_json(ms, proj.root)
    (moved,) = [t for t in report["transfers"] if t["name"] == MODEL_FILE]
    assert moved["bytes_copied"] == 0  # the replaced object is no source
    assert (
        remote_bytes(request, "s3_seaweedfs", settings, MODEL_FILE)
        == (proj.models / MODEL_FILE).read_bytes()
    )


def test_ranges_recorded_at_push_survive_a_dead_disk(tmp_path, request, ms):
    """After a pull on a new disk, the next partial fine-tune is still pushed as a delta: the
    sources' range hashes live in the remote catalog, not only on the disk that died."""
    proj, _ = tuned_project(tmp_path, request, "local")
    ok(ms, proj.root, "push")
    shutil.rmtree(proj.models)
    ok(ms, proj.root, "pull")
    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=2)
    report = push_json(ms, proj.root)
    (moved,) = [t for t in report["transfers"] if t["name"] == MODEL_FILE]
    assert moved["bytes_copied"] > 0
