"""Checks that run during a transfer: a file the checker refuses while its upload is already
under way, and an object whose bytes no longer match the range hashes recorded at push when it is
pulled. Each case checks that nothing unchecked becomes visible on either side."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.reliability.invariants import lost_bytes, snapshot_dir, snapshot_remote_at, stray_temps
from tests.reliability.ledger import said
from tests.support import MODEL_FILE, SyncProject, cli_env, run_subprocess


def cli(root: Path, *args: str) -> tuple[int, str, str]:
    proc = run_subprocess(list(args), root, env=cli_env(), timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def pushed_project(tmp_path: Path, settings: dict) -> SyncProject:
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    code, _, err = cli(proj.root, "push")
    assert code == 0, err
    return proj


def test_a_file_refused_while_its_upload_runs(ledger, tmp_path, seaweedfs):
    settings = seaweedfs.settings()
    with ledger.case(
        fault="a model that fails the check, pushed before any verdict on it exists",
        where="S3 (SeaweedFS): a fine-tune wrote NaN into a 24 MiB checkpoint; the upload runs "
        "beside the checker",
        user_sees="exit 3 naming the file and the NaN tensor; no object under its name, no "
        "multipart upload left open; the next push refuses it at once",
    ) as case:
        proj = pushed_project(tmp_path, settings)
        good = snapshot_remote_at(settings, tmp_path / "before")
        bad = {"w": torch.randn(6 << 20), "x": torch.tensor([1.0, float("nan")])}
        torch.save(bad, proj.models / MODEL_FILE)
        code, out, err = cli(proj.root, "push", "--json")
        assert code == 3, err
        (report,) = json.loads(out)
        (line,) = [p for p in report["problems"] if p.startswith(f"{MODEL_FILE}: not pushed")]
        assert "NaN or infinite values in x" in line
        after = snapshot_remote_at(settings, tmp_path / "after")
        assert after == good  # the good model pushed before is still what the remote holds
        client = seaweedfs.client()
        bucket, prefix = settings["bucket"], settings["prefix"]
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        assert not uploads.get("Uploads")
        sizes = {p.name: p.stat().st_size for p in proj.models.iterdir() if p.is_file()}
        case.lost_bytes = lost_bytes({"remote": good}, {"remote": after}, sizes)
        code, _, err = cli(proj.root, "push")
        assert code == 3 and "fails the check" in err
        case.verified = (
            "push: "
            + said(line, proj.root)
            + "; remote unchanged (the earlier good model), no open upload"
        )


def test_a_byte_flipped_on_the_way_back_of_a_pull(ledger, tmp_path, seaweedfs, fault_proxy):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    with ledger.case(
        fault="a byte flipped in a pull's response body, which no transport check caught",
        where="S3 (SeaweedFS) through a proxy: one ranged GET of the model after a dead disk",
        user_sees="exit 3 naming the object and the bytes that differ from the range hash "
        "recorded at push; nothing put in place; the same pull again brings the model back",
    ) as case:
        proj = pushed_project(tmp_path, settings)
        local = snapshot_dir(proj.models)
        for path in proj.models.iterdir():  # the disk died
            if path.is_file():
                path.unlink()
        fault_proxy.clear()
        fault_proxy.add("rot", method="GET", path_contains=MODEL_FILE, limit=1)
        code, out, err = cli(proj.root, "pull")
        assert code == 3, (out, err)
        assert fault_proxy.faults == 1
        line = next((ln for ln in err.splitlines() if "range hash recorded at push" in ln), "")
        assert MODEL_FILE in line, err
        assert not (proj.models / MODEL_FILE).exists()
        assert stray_temps(proj.models) == []
        fault_proxy.clear()
        code, _, err = cli(proj.root, "pull")
        assert code == 0, err
        back = snapshot_dir(proj.models)
        sizes = {p.name: p.stat().st_size for p in proj.models.iterdir() if p.is_file()}
        case.lost_bytes = lost_bytes({"local": local}, {"local": back}, sizes)
        assert back[MODEL_FILE] == local[MODEL_FILE]
        case.transfers_completed += 1
        case.verified = (
            "pull: " + said(line, proj.root) + "; no file or temp in models/; the next pull "
            "restored the model, sha256-equal to what was pushed"
        )
