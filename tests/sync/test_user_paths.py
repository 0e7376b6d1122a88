"""What a new user meets when following the README with a local-disk remote: listing order,
pull's options and messages, and the catalog a pull leaves behind."""

from __future__ import annotations

import json

from tests.agent.conftest import MODEL_FILE
from tests.sync.conftest import SyncProject


def local_project(tmp_path, name: str = "p", remote: str = "nas") -> SyncProject:
    (tmp_path / remote).mkdir(exist_ok=True)
    proj = SyncProject.create(
        tmp_path / name, {"type": "local", "path": str(tmp_path / remote / "backups")}
    )
    proj.write_model(seed=1)
    return proj


def model_rows(listing: str) -> list[str]:
    """The model-file names of a `list` table, in the order shown."""
    names = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    return [n for n in names if n.startswith("dinesh_ai_model")]


def test_remote_listing_sorts_versions_like_the_local_one(tmp_path, ms):
    """Eleven versions on one day: `.10` after `.9`, the first (no number) oldest; the same
    order as the local `list`, which was already right."""
    proj = local_project(tmp_path)
    for seed in range(11):
        proj.write_model(seed=100 + seed)
        res = ms(proj.root, "backup", "--kind", "version")
        assert res.code == 0, res.err
    assert ms(proj.root, "push").code == 0
    local = ms(proj.root, "list")
    remote = ms(proj.root, "list", "--remote", "r")
    assert local.code == 0 and remote.code == 0, remote.err
    local_versions = [n for n in model_rows(local.out) if "_v" in n]
    remote_versions = [n for n in model_rows(remote.out) if "_v" in n]
    assert len(remote_versions) == 11
    assert remote_versions == local_versions
    assert remote_versions[0].endswith(".11.pth") and remote_versions[1].endswith(".10.pth")
    assert "_v" in remote_versions[-1] and remote_versions[-1].count(".") == 1  # the day's first
    assert model_rows(remote.out)[0] == MODEL_FILE  # the current file first, as locally
    as_json = json.loads(ms(proj.root, "list", "--remote", "r", "--json").out)["files"]
    assert [r["name"] for r in as_json if r["name"] in remote_versions] == remote_versions
