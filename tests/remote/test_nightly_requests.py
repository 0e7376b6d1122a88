"""A nightly run with nothing new costs the remote reads only: S3 bills every request, and a
write would race with another agent's push for nothing."""

from __future__ import annotations

import hashlib
import json

from tests.support import MODEL_FILE, SyncProject


def test_a_run_with_nothing_new_only_reads_the_listing_and_the_catalog(
    tmp_path, seaweedfs, fault_proxy, ms
):
    proj = SyncProject.create(
        tmp_path / "p",
        seaweedfs.settings(endpoint_url=fault_proxy.url),
        retention={"keep_last": 3},
    )
    proj.write_model(seed=1)
    assert ms(proj.root, "run").code == 0  # a dated version, pushed with the current file
    fault_proxy.clear()

    res = ms(proj.root, "run", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert all(not r["transfers"] for r in report["remotes"]), report
    assert set(fault_proxy.requests) == {"GET"}, fault_proxy.requests  # no PUT, POST or DELETE
    assert fault_proxy.requests["GET"] == 2, fault_proxy.requests  # one listing, one catalog

    # and a run with something new still records it in the remote catalog
    data = proj.write_model(seed=2)
    fault_proxy.clear()
    assert ms(proj.root, "push").code == 0
    assert fault_proxy.requests["PUT"] >= 2, fault_proxy.requests  # the file, then the catalog
    catalog = (
        seaweedfs.client()
        .get_object(
            Bucket=seaweedfs.bucket, Key=f"{proj.remote['prefix']}/.model-safety/catalog.json"
        )["Body"]
        .read()
    )
    current = json.loads(catalog)["files"][MODEL_FILE]
    assert current["sha256"] == hashlib.sha256(data).hexdigest(), current
