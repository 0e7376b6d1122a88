"""Faults on the wire, injected by the Drive emulator. (Resume after kill -9 of a real process is
in the conformance suite.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from providers import open_provider
from providers.errors import TransientError
from providers.gdrive.provider import DriveProvider
from tests.providers.helpers import NO_WAIT
from tests.servers.drive import GDRIVE_TEST_CHUNK

UPLOAD_CHUNK = r"^/upload/drive/v2/files$"  # chunk PUTs go to the session URI (path + upload_id)
MEDIA = r"^/drive/v2/files/[^/]+$"


def _bare(settings, tmp_path) -> DriveProvider:
    """The backend without the retry layer: proves what happens within one call."""
    backend = {k: v for k, v in settings.items() if k not in ("type", "retry")}
    return DriveProvider.from_settings("drive", backend, state_dir=tmp_path / "state")


def _src(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "model.pth"
    path.write_bytes(os.urandom(size))
    return path


def _round_trip_ok(provider, src: Path, tmp_path: Path) -> None:
    out = tmp_path / "back" / src.name
    provider.get("model.pth", out)
    assert out.read_bytes() == src.read_bytes()


def test_503_mid_chunk_resumes_in_the_same_call(gdrive_emulator_settings, tmp_path, drive_emulator):
    provider = _bare(gdrive_emulator_settings, tmp_path)
    src = _src(tmp_path, 4 * GDRIVE_TEST_CHUNK)
    drive_emulator.inject("PUT", UPLOAD_CHUNK, status=503, partial=True, times=2, skip=1)
    drive_emulator.reset_counters()
    provider.put("model.pth", src)
    assert drive_emulator.counter("faults") == 2
    assert drive_emulator.counter("POST /upload/drive/v2/files") == 1  # one session throughout
    # The halves the server kept were not sent again: far less than a restart would cost.
    assert drive_emulator.counter("upload_bytes") < src.stat().st_size + GDRIVE_TEST_CHUNK
    _round_trip_ok(provider, src, tmp_path)


@pytest.mark.parametrize("reason", ["userRateLimitExceeded", "rateLimitExceeded"])
def test_403_rate_limits_are_retried(gdrive_emulator_settings, tmp_path, drive_emulator, reason):
    settings = {**gdrive_emulator_settings, "retry": NO_WAIT}
    provider = open_provider("drive", settings, state_dir=tmp_path / "state")
    src = _src(tmp_path, 2 * GDRIVE_TEST_CHUNK + 1)
    drive_emulator.inject("GET", r"^/drive/v2/files$", status=403, reason=reason, times=2)
    drive_emulator.inject("PUT", UPLOAD_CHUNK, status=403, reason=reason, times=1)
    provider.put("model.pth", src)
    assert drive_emulator.counter("faults") >= 3
    _round_trip_ok(provider, src, tmp_path)


def test_other_403_is_permission_denied_at_once(gdrive_emulator_settings, tmp_path, drive_emulator):
    from providers.errors import PermissionDenied

    settings = {**gdrive_emulator_settings, "retry": NO_WAIT}
    provider = open_provider("drive", settings, state_dir=tmp_path / "state")
    rule = drive_emulator.inject(
        "GET", r"^/drive/v2/files", status=403, reason="insufficientFilePermissions", times=5
    )
    with pytest.raises(PermissionDenied, match="share the folder"):
        list(provider.list())
    assert rule.times == 4  # no retry


def test_429_during_download_resumes_with_range(gdrive_emulator_settings, tmp_path, drive_emulator):
    provider = _bare(gdrive_emulator_settings, tmp_path)
    src = _src(tmp_path, 3 * GDRIVE_TEST_CHUNK)
    provider.put("model.pth", src)
    drive_emulator.reset_counters()
    # the first chunk arrives, the second is throttled
    drive_emulator.inject("GET", MEDIA, status=429, reason="rateLimitExceeded", skip=1)
    _round_trip_ok(provider, src, tmp_path)
    assert drive_emulator.counter("faults") == 1
    # the retry asked for the missing range only: no byte was sent twice
    assert drive_emulator.counter("media_bytes_sent") == src.stat().st_size


def test_html_502_body_is_transient(gdrive_emulator_settings, tmp_path, drive_emulator):
    provider = _bare(gdrive_emulator_settings, tmp_path)
    drive_emulator.inject("GET", r"^/drive/v2/files", status=502, kind="html")
    with pytest.raises(TransientError, match="502"):
        provider.stat("model.pth")
    # an HTML page with a 200 where JSON was expected (JSONDecodeError in the SDK): transient too
    drive_emulator.inject("GET", r"^/drive/v2/files$", status=200, kind="html")
    with pytest.raises(TransientError, match="non-JSON"):
        provider.stat("model.pth")
    settings = {**gdrive_emulator_settings, "retry": NO_WAIT}
    retrying = open_provider("drive", settings, state_dir=tmp_path / "state")
    drive_emulator.inject("GET", r"^/drive/v2/files", status=502, kind="html", times=2)
    assert list(retrying.list()) == []


def test_connection_resets_mid_transfer_are_survived(
    gdrive_emulator_settings, tmp_path, drive_emulator
):
    provider = _bare(gdrive_emulator_settings, tmp_path)
    src = _src(tmp_path, 3 * GDRIVE_TEST_CHUNK + 5)
    drive_emulator.inject("PUT", UPLOAD_CHUNK, kind="reset", partial=True, times=1)
    provider.put("model.pth", src)
    drive_emulator.inject("GET", MEDIA, kind="reset", times=2)
    _round_trip_ok(provider, src, tmp_path)


def test_interrupted_download_leaves_no_file_and_the_next_get_resumes(
    gdrive_emulator_settings, tmp_path, drive_emulator
):
    provider = _bare({**gdrive_emulator_settings, "chunk_retries": 1}, tmp_path)
    src = _src(tmp_path, 3 * GDRIVE_TEST_CHUNK)
    provider.put("model.pth", src)
    # the first chunk arrives, then the second fails more often than the call retries it
    drive_emulator.inject("GET", MEDIA, status=503, times=3, skip=1)
    dest_dir = tmp_path / "restore"
    dest_dir.mkdir()
    with pytest.raises(TransientError):
        provider.get("model.pth", dest_dir / "model.pth")
    # nothing under the name; only the hidden temp file a later attempt resumes from
    assert [p.name.endswith(".incomplete") for p in dest_dir.iterdir()] == [True]
    drive_emulator.clear_faults()
    drive_emulator.reset_counters()
    provider.get("model.pth", dest_dir / "model.pth")
    assert drive_emulator.counter("media_bytes_sent") == 2 * GDRIVE_TEST_CHUNK
    assert os.listdir(dest_dir) == ["model.pth"]
    assert (dest_dir / "model.pth").read_bytes() == src.read_bytes()

    drive_emulator.inject("GET", MEDIA, status=503, times=3)
    with pytest.raises(TransientError):
        provider.get("model.pth", tmp_path / "other.pth")
    provider.close()  # no retry is coming: close drops what was kept for one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".other.pth")]
    assert list((tmp_path / "state" / "downloads").iterdir()) == []


def test_failure_between_upload_and_rename_reuses_the_finished_upload(
    gdrive_emulator_settings, tmp_path, drive_emulator
):
    settings = {**gdrive_emulator_settings, "retry": NO_WAIT}
    provider = open_provider("drive", settings, state_dir=tmp_path / "state")
    src = _src(tmp_path, 2 * GDRIVE_TEST_CHUNK + 9)
    drive_emulator.inject("PATCH", r"^/drive/v2/files/", status=503)  # the rename to the key
    drive_emulator.reset_counters()
    provider.put("model.pth", src)
    # the retry found the completed session in the journal: nothing uploaded twice ...
    assert drive_emulator.counter("upload_bytes") == src.stat().st_size
    assert drive_emulator.counter("uploads_completed") == 1
    # ... and no stray temporary file is left in the folder
    titles = [f.title for f in drive_emulator.files_in(settings["folder_id"])]
    assert titles == ["model.pth"]
    _round_trip_ok(provider, src, tmp_path)


def test_abandoned_finished_upload_is_removed_when_the_source_changed(
    gdrive_emulator_settings, tmp_path, drive_emulator
):
    provider = _bare(gdrive_emulator_settings, tmp_path)
    src = _src(tmp_path, GDRIVE_TEST_CHUNK + 1)
    drive_emulator.inject("PATCH", r"^/drive/v2/files/", status=503)
    with pytest.raises(TransientError):
        provider.put("model.pth", src)
    folder = gdrive_emulator_settings["folder_id"]
    assert [f.title.endswith(".partial") for f in drive_emulator.files_in(folder)] == [True]
    src.write_bytes(b"a newer checkpoint")
    provider.put("model.pth", src)
    assert [(f.title, f.data) for f in drive_emulator.files_in(folder)] == [
        ("model.pth", b"a newer checkpoint")
    ]
