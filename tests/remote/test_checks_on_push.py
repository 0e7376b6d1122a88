"""A file that fails the check never leaves the machine under any name, and never takes the
place of a good copy: the current file, the backup slot, hand-made versions, on every backend."""

from __future__ import annotations

import hashlib
import json
import os

import torch

from tests.support import MODEL_FILE


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo payload > /dev/null",))


def _remote_shas(ms, proj) -> dict[str, str]:  # type: ignore[no-untyped-def]
    res = ms(proj.root, "list", "--remote", "r", "--json")
    assert res.code == 0, res.err
    return {row["name"]: row.get("sha256") for row in json.loads(res.out)["files"]}


def test_a_failing_file_is_refused_under_every_name(sync_project, ms, tmp_path):
    proj = sync_project
    assert ms(proj.root, "backup").code == 0
    assert ms(proj.root, "push").code == 0
    good_backup = hashlib.sha256((proj.models / "dinesh_ai_model_backup.pth").read_bytes())

    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": _Payload()}, evil)
    nan = tmp_path / "nan.pth"
    torch.save({"w": torch.tensor([1.0, float("nan")])}, nan)

    # backup asks the same question as the push: the bad model does not take the slot
    (proj.models / MODEL_FILE).write_bytes(evil.read_bytes())
    res = ms(proj.root, "backup")
    assert res.code == 3 and "could run code: it calls os.system" in res.err, res
    slot = proj.models / "dinesh_ai_model_backup.pth"
    assert hashlib.sha256(slot.read_bytes()).digest() == good_backup.digest()

    # by hand, under the names a push sends: the backup slot and two dated versions
    slot.write_bytes(nan.read_bytes())
    (proj.models / "dinesh_ai_model_v2026-11-02.pth").write_bytes(evil.read_bytes())
    (proj.models / "dinesh_ai_model_v2026-11-03.pth").write_bytes(nan.read_bytes())
    # the catalog rebuilt from the files: the hand-made slot is a copy like any other to it
    (proj.models / ".model-safety" / "catalog.json").unlink()
    res = ms(proj.root, "push")
    assert res.code == 3, res
    for name, why in [
        (MODEL_FILE, "could run code: it calls os.system"),
        ("dinesh_ai_model_backup.pth", "NaN or infinite values in w"),
        ("dinesh_ai_model_v2026-11-02.pth", "could run code: it calls os.system"),
        ("dinesh_ai_model_v2026-11-03.pth", "NaN or infinite values in w"),
    ]:
        lines = [ln for ln in res.err.splitlines() if f" {name}: not pushed" in ln]
        assert len(lines) == 1 and why in lines[0], (name, res.err)
    bad = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (evil, nan)}
    remote = _remote_shas(ms, proj)
    assert not bad & set(remote.values())
    assert remote["dinesh_ai_model_backup.pth"] == good_backup.hexdigest()

    # refusals are recorded by content: a second push re-checks nothing and says it again
    records = proj.models / ".model-safety" / "validated.json"
    before = records.stat().st_mtime_ns
    res = ms(proj.root, "push")
    assert res.code == 3 and res.err.count("not pushed: fails the check") == 4, res
    assert records.stat().st_mtime_ns == before
    assert not bad & set(_remote_shas(ms, proj).values())


def test_a_refusal_is_said_once_per_run_whatever_the_number_of_remotes(ms, tmp_path):
    from tests.support import SyncProject

    (tmp_path / "nas").mkdir()
    nas = {"type": "local", "path": str(tmp_path / "nas" / "a")}
    proj = SyncProject.create(tmp_path / "proj", nas)
    proj.write_config(extra_remotes={"b": {"type": "local", "path": str(tmp_path / "nas" / "b")}})
    proj.write_model(seed=1)
    torch.save({"w": torch.tensor([float("nan")])}, proj.models / MODEL_FILE)
    for args in (["push", "--all"], ["sync", "--all"], ["run"]):
        res = ms(proj.root, *args)
        assert res.code == 3, (args, res)
        assert res.err.count(f"{MODEL_FILE}: not pushed: fails the check") == 1, (args, res.err)


def test_new_content_goes_up_beside_its_check_and_a_refusal_abandons_it(
    tmp_path, seaweedfs, fault_proxy, ms
):
    """The upload of content never judged before starts at once, the check running beside it;
    a file that fails is then abandoned on the server: no object, no upload left open."""
    from tests.support import SyncProject

    proj = SyncProject.create(tmp_path / "p", seaweedfs.settings(endpoint_url=fault_proxy.url))
    proj.write_model(seed=1)
    bad = {"w": torch.randn(6 << 20), "x": torch.tensor([1.0, float("nan")])}  # 24 MiB
    torch.save(bad, proj.models / MODEL_FILE)
    size = (proj.models / MODEL_FILE).stat().st_size
    fault_proxy.clear()

    res = ms(proj.root, "push", "--json")
    assert res.code == 3, res
    (report,) = json.loads(res.out)
    why = f"{MODEL_FILE}: not pushed: fails the check: NaN or infinite values in x"
    assert any(why in p for p in report["problems"]), report["problems"]
    step = next(s for s in report["steps"] if s["name"] == MODEL_FILE)
    assert step["action"] == "refuse" and "NaN" in step["reason"]
    assert MODEL_FILE not in {t["name"] for t in report["transfers"]}
    # its bytes went up while the checker judged it (the parts), then the upload was aborted
    assert fault_proxy.body_bytes >= size // 2, fault_proxy.body_bytes
    assert fault_proxy.requests["DELETE"] >= 1
    client = seaweedfs.client()
    prefix = proj.remote["prefix"]
    keys = {
        o["Key"]
        for o in client.list_objects_v2(Bucket=seaweedfs.bucket, Prefix=prefix).get("Contents", [])
    }
    assert f"{prefix}/{MODEL_FILE}" not in keys and f"{prefix}/tokenizer.json" in keys
    uploads = client.list_multipart_uploads(Bucket=seaweedfs.bucket, Prefix=prefix)
    assert not uploads.get("Uploads"), uploads

    # the verdict is kept: the next push refuses at once, without sending a byte of it again
    fault_proxy.clear()
    res = ms(proj.root, "push")
    assert res.code == 3 and "fails the check" in res.err
    assert fault_proxy.body_bytes < size // 4
