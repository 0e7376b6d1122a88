"""The confined check streams: checking a 200 MB checkpoint does not hold it in memory."""

from __future__ import annotations

import pytest

from agent.checks.runner import check_file


@pytest.mark.slow
def test_finite_check_of_200mb_checkpoint_stays_small(tmp_path):
    import torch

    tiny = tmp_path / "tiny.pth"
    torch.save({"w": torch.zeros(4)}, tiny)
    path = tmp_path / "big.pth"
    # 4 tensors of 50 MB; the last value of the last one is NaN, so every byte must be read
    state = {f"layer{i}.weight": torch.zeros(25 * 1024 * 512) for i in range(4)}
    state["layer3.weight"][-1] = float("nan")
    torch.save(state, path)
    del state
    base = check_file(tiny)
    verdict = check_file(path)
    assert verdict.reason == "NaN or infinite values in layer3.weight"
    assert base.peak_rss_mb is not None and verdict.peak_rss_mb is not None
    # The file is mapped, not read into the heap: the child's peak grows by the pages it
    # touched (file-backed, reclaimable), well under a second copy of the 200 MB.
    size_mb = path.stat().st_size / 2**20
    assert verdict.peak_rss_mb - base.peak_rss_mb < size_mb * 1.2, (verdict, base)
