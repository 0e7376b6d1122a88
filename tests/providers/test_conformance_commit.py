"""The put's commit gate (``before_commit``, providers/base.py), for every backend, on a real
server, through ``open_provider`` (so through the retry layer). Part of the conformance suite, in
its own module to keep modules small.

The agent starts an upload while the file's check is still running and lets it be completed
only once the check has passed: the gate must come after the bytes are sent and before anything
appears under the key, and a refusal must leave nothing behind and nothing to resume."""

from __future__ import annotations

import pytest

from providers.errors import NotFound
from tests.providers.helpers import make_file
from tests.providers.test_conformance import sizes_for
from tests.providers.test_conformance_delta import RANGE, delta_put, reuse_of, two_versions


class Refused(Exception):
    """What an agent's gate raises: not a provider error, so never retried or translated."""


@pytest.mark.parametrize("which", [1, 3, 4], ids=["1", "part+1", "3parts"])
def test_gate_runs_after_the_bytes_and_before_the_object_appears(
    remote, remote_settings, tmp_path, which
):
    size = sizes_for(remote_settings)[which]
    part = sizes_for(remote_settings)[3] - 1
    src = tmp_path / "src.bin"
    hashes = make_file(src, size, seed=which)
    moved: list[int] = []
    seen: list[tuple[int, bool]] = []

    def gate() -> None:
        try:
            remote.stat("m/ckpt.pth")
            visible = True
        except NotFound:
            visible = False
        seen.append((sum(moved), visible))

    info = remote.put("m/ckpt.pth", src, progress=moved.append, before_commit=gate)
    assert seen, "the gate was never asked"
    sent_then, visible_then = seen[-1]
    assert not visible_then
    # Drive hands over its last chunk (the one that creates the file) after the gate; every
    # other backend has sent all it will send
    assert sent_then >= size - part
    assert info.size == size and sum(moved) == size
    for name in remote.capabilities.hashes:
        assert remote.stat("m/ckpt.pth").hashes[name] == hashes[name]


@pytest.mark.parametrize("which", [1, 4], ids=["1", "3parts"])
def test_a_refused_put_leaves_the_old_object_and_nothing_to_resume(
    remote, remote_settings, tmp_path, which
):
    size = sizes_for(remote_settings)[which]
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old_hashes = make_file(old, size, seed=1)
    make_file(new, size, seed=2)
    remote.put("m/ckpt.pth", old)

    def refuse() -> None:
        raise Refused("fails the check")

    with pytest.raises(Refused, match="fails the check"):
        remote.put("m/ckpt.pth", new, before_commit=refuse)
    stat = remote.stat("m/ckpt.pth")
    assert stat.size == size
    for name in remote.capabilities.hashes:
        assert stat.hashes[name] == old_hashes[name], "the refused bytes replaced the object"
    assert [o.key for o in remote.list("m/")] == ["m/ckpt.pth"]
    # the refused upload is not resumed later: the same file put again is sent whole
    moved: list[int] = []
    remote.put("m/ckpt.pth", new, progress=moved.append)
    assert sum(moved) == size


def test_a_refused_delta_put_leaves_nothing(remote, tmp_path):
    put_reusing = delta_put(remote)
    old, new = two_versions(tmp_path, 6 * RANGE, changed={5})
    remote.put("v/old.pth", old)
    reuse = reuse_of(remote, "v/old.pth", new, old)

    def refuse() -> None:
        raise Refused("fails the check")

    with pytest.raises(Refused):
        put_reusing("v/new.pth", new, reuse, before_commit=refuse)
    with pytest.raises(NotFound):
        remote.stat("v/new.pth")
    assert [o.key for o in remote.list("v/")] == ["v/old.pth"]
    # nothing of the refused attempt is taken up again: its copied ranges are copied anew
    info, copied = put_reusing("v/new.pth", new, reuse_of(remote, "v/old.pth", new, old))
    assert info.size == new.stat().st_size and copied > 0
