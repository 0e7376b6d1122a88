"""A checker child started before its file is known (a push of new content starts one as it
begins) judges the file it is then given exactly as a child started for it would; one that is
not needed, or that died before it was given a file, costs no verdict and is not left behind."""

from __future__ import annotations

import os

import torch

from agent.checks import spare
from agent.checks.runner import check_file


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_spare_judges_the_file_it_is_given(tmp_path):
    good, nan = tmp_path / "good.pth", tmp_path / "nan.pth"
    torch.save({"w": torch.randn(64)}, good)
    torch.save({"w": torch.tensor([1.0, float("nan")])}, nan)
    for path, ok in ((good, True), (nan, False)):
        spare.start()
        verdict = check_file(path)
        assert verdict.ok is ok, verdict
        assert ok or verdict.reason == "NaN or infinite values in w"
        assert verdict.tensors["w"][0] == "float32"


def test_a_spare_not_needed_is_killed(tmp_path):
    spare.start()
    proc = spare._spare
    assert proc is not None and _alive(proc.pid)
    spare.drop()
    assert proc.poll() is not None
    good = tmp_path / "good.pth"
    torch.save({"w": torch.randn(8)}, good)
    assert check_file(good).ok  # without a spare, a child is started for the file


def test_a_spare_that_died_before_its_file_is_no_verdict_on_the_file(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.randn(8)}, good)
    spare.start()
    proc = spare._spare
    assert proc is not None
    proc.kill()  # as the OOM killer or a stray kill would
    proc.wait()
    verdict = check_file(good)
    assert verdict.ok, verdict


def test_a_push_that_fails_before_any_check_leaves_no_checker_behind(tmp_path, ms):
    from tests.support import SyncProject

    (tmp_path / "nas").mkdir()
    proj = SyncProject.create(tmp_path / "p", {"type": "local", "path": str(tmp_path / "nas")})
    proj.write_model(seed=3)  # new content: the push starts a checker child at once
    res = ms(proj.root, "push", "--remote", "nope")
    assert res.code != 0 and "nope" in res.err, res
    assert spare._spare is None
