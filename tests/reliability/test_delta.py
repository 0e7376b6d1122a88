"""Delta pushes under faults: a source damaged since it was pushed, a server without part copy,
kill -9 between the copied and the sent parts. Each case checks the remote ends holding exactly
the local bytes under every name (0 bytes lost) and nothing half-made is visible."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from agent.faultpoints import ENV
from tests.reliability.invariants import lost_bytes, snapshot_dir, snapshot_remote_at, stray_temps
from tests.reliability.ledger import said
from tests.support import MODEL_FILE, SyncProject, cli_env, run_subprocess, write_layered_checkpoint

LAYER = 4 << 20  # 12 layers of 4 MiB: six 8 MiB ranges


def cli(root: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = run_subprocess(list(args), root, env=cli_env(**env), timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def ok(root: Path, *args: str) -> str:
    code, out, err = cli(root, *args)
    assert code == 0, (args, out, err)
    return out


def tuned_after_push(tmp_path: Path, settings: dict) -> SyncProject:
    """A project whose 12-layer model was pushed, then fine-tuned in its last 2 layers."""
    proj = SyncProject.create(tmp_path / "p", settings)
    proj.write_model(seed=1)
    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER)
    ok(proj.root, "push")
    write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=2)
    return proj


def remote_equals_local(case, proj: SyncProject, settings: dict, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    local = snapshot_dir(proj.models)
    remote = snapshot_remote_at(settings, tmp_path / "check")
    shared = {n: local[n] for n in remote}
    sizes = {p.name: p.stat().st_size for p in proj.models.iterdir() if p.is_file()}
    case.lost_bytes = lost_bytes({"remote": shared}, {"remote": remote}, sizes)
    assert remote == shared and case.lost_bytes == 0
    assert MODEL_FILE in remote
    assert stray_temps(proj.models) == []


def test_delta_source_damaged_under_the_same_identity(ledger, tmp_path, local_settings):
    with ledger.case(
        fault="delta source damaged behind an unchanged identity",
        where="local remote: one byte of the previous dated version flipped in place, its mtime "
        "set back (the listing cannot tell)",
        user_sees="the push sends the new version whole, exit 3 naming the damaged source and "
        "the command that heals it, which does",
    ) as case:
        proj = SyncProject.create(tmp_path / "p", local_settings)
        proj.write_model(seed=1)
        write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER)
        ok(proj.root, "backup", "--kind", "version")
        ok(proj.root, "push")
        (v1,) = [p.name for p in proj.models.glob("dinesh_ai_model_v*.pth")]
        write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=12)
        ok(proj.root, "push")  # the remote's current file now shares nothing with v1
        write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=2)
        ok(proj.root, "backup", "--kind", "version")  # v2: 10 of 12 layers as in v1
        obj = Path(local_settings["path"]) / v1
        st = obj.stat()
        with open(obj, "r+b") as fh:  # in a range v2 shares with v1
            fh.seek(LAYER)
            b = fh.read(1)
            fh.seek(LAYER)
            fh.write(bytes([b[0] ^ 1]))
        os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))

        code, out, err = cli(proj.root, "push", "--json")
        assert code == 3, err
        (report,) = json.loads(out)
        line = next(p for p in report["problems"] if "damaged on r" in p)
        assert line.startswith(f"{v1}: damaged on r")
        (v2,) = [
            t["name"] for t in report["transfers"] if t["name"].startswith("dinesh_ai_model_v")
        ]
        (moved,) = [t for t in report["transfers"] if t["name"] == v2]
        assert moved["bytes_copied"] == 0  # sent whole, never assembled from damaged bytes
        recommended = line.split("`model-safety ")[1].split("`")[0].split()
        assert ms_ok(proj.root, *recommended)
        remote_equals_local(case, proj, local_settings, tmp_path)
        ok(proj.root, "verify", "--remote", "r", "--deep")
        case.verified = (
            "push: " + said(line, proj.root) + f"; `{' '.join(recommended)}` healed it; remote "
            "holds the local bytes; verify --deep 0"
        )


def ms_ok(root: Path, *args: str) -> bool:
    code, out, err = cli(root, *args)
    assert code == 0, (args, out, err)
    return "healed" in out


def test_kill_between_copied_and_sent_parts(ledger, tmp_path, local_settings):
    with ledger.case(
        fault="kill -9 during a delta push, between the copied and the sent ranges",
        where="local remote; crash point upload-progress (the first bytes sent after the "
        "unchanged ranges were copied)",
        user_sees="the next `push` completes the same object, exit 0",
    ) as case:
        proj = tuned_after_push(tmp_path, local_settings)
        code, _, err = cli(proj.root, "push", **{ENV: "upload-progress"})
        assert code == -signal.SIGKILL, err
        case.faults_injected += 1
        out = ok(proj.root, "push", "--json")
        (report,) = json.loads(out)
        size = (proj.models / MODEL_FILE).stat().st_size
        (moved,) = [t for t in report["transfers"] if t["name"] == MODEL_FILE]
        # finished ranges are neither copied nor sent again
        assert moved["bytes_sent"] + moved["bytes_copied"] < size, moved
        case.transfers_completed += 1
        remote_equals_local(case, proj, local_settings, tmp_path)
        ok(proj.root, "verify", "--remote", "r", "--deep")
        case.verified = (
            f"second push: {moved['bytes_sent']} B sent, {moved['bytes_copied']} B copied of "
            f"{size} (the rest was done before the kill); remote holds the local bytes"
        )


@pytest.mark.parametrize("kind", ["s3_seaweedfs"])
def test_delta_source_replaced_since_push_is_no_source(ledger, tmp_path, request, kind):
    settings = request.getfixturevalue(f"{kind}_settings")
    with ledger.case(
        fault="delta source replaced since it was pushed",
        where="S3 (SeaweedFS): the previous model's object rewritten with one byte flipped, "
        "same metadata",
        user_sees="the push sends the file whole, exit 0; the remote holds the local bytes",
    ) as case:
        from tests.remote.damage import flip_remote_object

        proj = tuned_after_push(tmp_path, settings)
        flip_remote_object(request, kind, settings, MODEL_FILE)
        out = ok(proj.root, "push", "--json")
        (report,) = json.loads(out)
        (moved,) = [t for t in report["transfers"] if t["name"] == MODEL_FILE]
        assert moved["bytes_copied"] == 0
        remote_equals_local(case, proj, settings, tmp_path)
        case.verified = (
            "sent whole (0 B copied from the replaced object); remote holds the local bytes"
        )


def test_a_server_without_part_copy_gets_whole_files_from_then_on(
    ledger, tmp_path, seaweedfs, fault_proxy
):
    with ledger.case(
        fault="S3 server without UploadPartCopy",
        where="a loopback proxy in front of SeaweedFS answering 501 NotImplemented to every "
        "UploadPartCopy",
        user_sees="the push sends the file whole, exit 0; later pushes do not try again "
        "(.model-safety/remotes/r/no-part-copy)",
    ) as case:
        settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
        proj = tuned_after_push(tmp_path, settings)
        refuse = fault_proxy.add("501", method="PUT", header="x-amz-copy-source", limit=1000)
        out = ok(proj.root, "push", "--json")
        (report,) = json.loads(out)
        (moved,) = [t for t in report["transfers"] if t["name"] == MODEL_FILE]
        assert moved["bytes_copied"] == 0
        marker = proj.models / ".model-safety" / "remotes" / "r" / "no-part-copy"
        assert marker.is_file()
        asked = refuse.fired
        write_layered_checkpoint(proj.models / MODEL_FILE, layer_bytes=LAYER, tuned=3)
        ok(proj.root, "push")
        assert refuse.fired == asked  # not tried again
        case.transfers_completed += 2
        direct = {**settings, "endpoint_url": seaweedfs.endpoint_url}  # past the proxy
        remote_equals_local(case, proj, direct, tmp_path)
        case.verified = (
            f"{asked} part copy refused once, file sent whole; the next push sent whole without "
            "asking; remote holds the local bytes"
        )
