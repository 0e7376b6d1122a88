"""How an S3 download asks for its bytes: one ranged GET per run of consecutive ranges (fewer
requests, less CPU), while every range is still marked done, in order, as soon as its last byte
is written (so the hasher follows and a kill loses at most one range per connection)."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

from providers import open_provider
from providers.s3_download import MAX_GET, Partial, download_ranges, stretches
from providers.s3_errors import s3_errors
from providers.transfer import Progress
from tests.servers.seaweed import PART


@given(
    todo=st.lists(st.integers(0, 300), unique=True).map(sorted),
    rsize=st.sampled_from([5 << 20, 8 << 20, 64 << 20]),
    concurrency=st.integers(1, 16),
)
def test_stretches_cover_the_missing_ranges_in_runs(todo, rsize, concurrency):
    runs = stretches(todo, rsize, concurrency)
    assert [i for run in runs for i in run] == todo  # each missing range once, in order
    for run in runs:
        assert run == list(range(run[0], run[0] + len(run)))  # one contiguous byte range
        assert len(run) * rsize <= max(rsize, MAX_GET)
    if todo:  # enough GETs to keep every connection busy when there are ranges enough
        assert len(runs) >= min(len(todo), concurrency)


def test_a_get_spanning_ranges_marks_each_range_in_order(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url, max_request_concurrency=1)
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    data = random.Random(3).randbytes(3 * PART + 7)  # 4 ranges: 2 GETs of 2 ranges each
    (tmp_path / "src").write_bytes(data)
    remote.put("d.pth", tmp_path / "src")
    inner = remote.inner
    info = inner.stat("d.pth")
    fault_proxy.clear()
    marks: list[int] = []
    dest = tmp_path / "out" / "d.pth"
    dest.parent.mkdir()
    actual = download_ranges(
        inner.client,
        bucket=inner.bucket,
        key=inner._key("d.pth"),
        dest=dest,
        partial=Partial(tmp_path / "out" / ".d.pth.t.incomplete", info.etag, len(data), PART),
        concurrency=1,
        hash_names={"sha256"},
        expected={"sha256": hashlib.sha256(data).hexdigest()},
        progress=Progress(),
        errors=lambda what: s3_errors("r", inner.bucket, what),
        what="get d.pth",
        on_done=marks.append,
    )
    assert dest.read_bytes() == data
    assert actual["sha256"] == hashlib.sha256(data).hexdigest()
    assert marks == [0, 1, 2, 3]
    assert fault_proxy.requests["GET"] == 2
