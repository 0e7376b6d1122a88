"""Disaster recovery under a real kill: ``model-safety pull`` killed with -9 mid-download, then
``pull`` again fetches only what is missing and brings back the same bytes."""

from __future__ import annotations

import shutil

import pytest

from tests.agent.conftest import MODEL_FILE
from tests.sync.conftest import SyncProject, agent_cli, kill_agent_when
from tests.sync.test_processes import big_checkpoint


@pytest.mark.slow
def test_kill_9_during_pull_then_pull_fetches_only_what_is_missing(
    tmp_path, seaweedfs, fault_proxy
):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.models.mkdir()
    data = big_checkpoint(proj.models / MODEL_FILE)
    size = len(data)
    (proj.models / "tokenizer.json").write_text("{}")
    pushed = agent_cli(proj.root, "push")
    assert pushed.returncode == 0, pushed.stderr
    shutil.rmtree(proj.models)  # the disk died

    fault_proxy.clear()
    kill_agent_when(proj.root, "pull", reached=lambda: fault_proxy.response_bytes >= size * 0.5)
    fetched_before_kill = fault_proxy.response_bytes
    assert fetched_before_kill < size, "the pull finished before it could be killed"
    assert not (proj.models / MODEL_FILE).exists()

    fault_proxy.clear()
    second = agent_cli(proj.root, "pull")
    assert second.returncode == 0, second.stderr
    refetched = fault_proxy.response_bytes
    # Ranges that arrived before the kill are not fetched again; only those in flight at the
    # kill (at most one per connection) may be.
    in_flight = settings["max_request_concurrency"] * settings["multipart_chunksize"]
    assert refetched < size, (refetched, size)
    assert refetched <= size - fetched_before_kill + in_flight + 64 * 1024, refetched
    assert (proj.models / MODEL_FILE).read_bytes() == data
    leftovers = [p.name for p in proj.models.iterdir() if p.name.endswith(".incomplete")]
    assert leftovers == []
    downloads = proj.models / ".model-safety" / "remotes" / "r" / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []
