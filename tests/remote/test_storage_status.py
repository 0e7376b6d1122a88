"""`status` as the seed's storage calculation on each remote (a local remote and SeaweedFS): per
model, the bytes stored there, the model bytes they hold, what compression saved, what the next
version would store and what a push would send now; an unreachable remote is said, not fatal."""

from __future__ import annotations

import json

import pytest

from tests.support import SyncProject


@pytest.fixture(params=["local", "s3_seaweedfs"])
def proj(request, tmp_path) -> SyncProject:
    settings = request.getfixturevalue(f"{request.param}_settings")
    proj = SyncProject.create(tmp_path / "proj", settings, auto_push=False)
    proj.write_model(seed=1)
    return proj


def local_bytes(proj) -> int:
    return sum(p.stat().st_size for p in proj.models.iterdir() if p.is_file())


def remote_storage(ms, proj) -> dict:
    res = ms(proj.root, "status", "--json")
    assert res.code == 0, res.err
    (model,) = json.loads(res.out)["models"]
    return model


def test_status_gives_each_remotes_share_per_model(ms, proj):
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    model = remote_storage(ms, proj)
    r = model["storage"]["remotes"]["r"]
    everything = local_bytes(proj)  # current, version, each with its tokenizer
    assert (r["stored_bytes"], r["logical_bytes"], r["compression_saved_bytes"]) == (0, 0, 0)
    assert r["would_push_bytes"] == everything
    assert r["next_version_bytes"] == model["current_bytes"]

    assert ms(proj.root, "push").code == 0
    model = remote_storage(ms, proj)
    r = model["storage"]["remotes"]["r"]
    assert r["stored_bytes"] == r["logical_bytes"] == everything
    assert r["compression_saved_bytes"] == 0 and r["would_push_bytes"] == 0
    assert model["storage"]["local"]["stored_bytes"] == everything

    proj.write_model(seed=2, hidden=128)  # a bigger model: the next version needs more
    model = remote_storage(ms, proj)
    r = model["storage"]["remotes"]["r"]
    current = model["current_bytes"]
    assert r["next_version_bytes"] == current and r["would_push_bytes"] == current
    text = ms(proj.root, "status").out
    lines = text.splitlines()
    stored = next(line for line in lines if line.startswith("  stored on r "))
    assert "(model bytes " in stored and "compression saved 0 B" in stored
    assert any(
        line.strip().startswith("next version") and "a push now would send" in line
        for line in lines
    )


def test_an_unreachable_remote_has_no_figures_and_status_still_works(tmp_path, ms, local_settings):
    offline = {"type": "local", "path": str(tmp_path / "not-mounted" / "nas")}
    proj = SyncProject.create(tmp_path / "proj", local_settings, extra_remotes={"offline": offline})
    proj.write_model(seed=1)
    res = ms(proj.root, "status", "--json")
    assert res.code == 0, res.err
    remotes = json.loads(res.out)["models"][0]["storage"]["remotes"]
    assert set(remotes) == {"r", "offline"}
    assert "error" in remotes["offline"] and remotes["r"]["stored_bytes"] == 0
    text = ms(proj.root, "status").out
    assert any(
        line.split() == ["stored", "on", "offline", "unreachable"] for line in text.splitlines()
    )


def test_a_zstd_remote_counts_what_compression_saved(ms, proj):
    from tests.local.test_compression import write_dtype_checkpoint
    from tests.remote.test_compressed_remote import set_compression
    from tests.support import MODEL_FILE

    set_compression(proj, remote="zstd")
    write_dtype_checkpoint(proj.models / MODEL_FILE, "bfloat16", seed=1)  # bf16: zstd saves ~24%
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    r = remote_storage(ms, proj)["storage"]["remotes"]["r"]
    # the version went up as .pth.zst: the remote holds fewer bytes than the model bytes it keeps
    assert r["logical_bytes"] == local_bytes(proj)
    assert 0 < r["compression_saved_bytes"] == r["logical_bytes"] - r["stored_bytes"]
    stored = next(ln for ln in ms(proj.root, "status").out.splitlines() if "stored on r " in ln)
    assert "compression saved 0 B" not in stored
