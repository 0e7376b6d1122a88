"""Drive-specific behaviour on the emulator: titles and duplicates, trash, auth, settings, quota.
(Round trips, NotFound, prefixes, copy, ... are in the conformance suite.)"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from providers import open_provider
from providers.errors import (
    ConfigError,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
)
from tests.providers.helpers import NO_WAIT
from tests.servers.drive import GDRIVE_TEST_CHUNK


@pytest.fixture
def settings(gdrive_emulator_settings):
    return {**gdrive_emulator_settings, "retry": NO_WAIT}


@pytest.fixture
def drive(settings, tmp_path):
    provider = open_provider("drive", settings, state_dir=tmp_path / "state")
    yield provider
    provider.close()


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_multi_chunk_round_trip_uses_drive_md5_and_stored_sha256(drive, tmp_path, drive_emulator):
    src = _file(tmp_path, "model.pth", 3 * GDRIVE_TEST_CHUNK + 17)
    drive_emulator.reset_counters()
    info = drive.put("model.pth", src)
    data = src.read_bytes()
    assert drive_emulator.counter("PUT /upload/drive/v2/files") == 4  # really chunked
    assert info.hashes == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert drive.stat("model.pth").size == len(data)
    drive.get("model.pth", tmp_path / "back.pth")
    assert (tmp_path / "back.pth").read_bytes() == data


def test_duplicate_titles_resolve_to_newest_and_put_replaces_them(
    drive, settings, tmp_path, drive_emulator, caplog
):
    folder = settings["folder_id"]
    drive_emulator.create_file("model.pth", b"old", parent=folder)
    drive_emulator.create_file("model.pth", b"newer", parent=folder)
    assert drive.stat("model.pth").size == len(b"newer")
    drive.get("model.pth", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"newer"
    assert "2 files titled 'model.pth'" in caplog.text
    assert [o.key for o in drive.list()] == ["model.pth"]

    src = tmp_path / "v3"
    src.write_bytes(b"third version")
    drive.put("model.pth", src)
    live = [f for f in drive_emulator.files_in(folder) if f.title == "model.pth"]
    assert [f.data for f in live] == [b"third version"]
    # the replaced duplicates are in the trash, recoverable by hand, not destroyed
    trashed = [f.data for f in drive_emulator.files_in(folder, include_trashed=True) if f.trashed]
    assert sorted(trashed) == [b"newer", b"old"]

    drive.delete("model.pth")
    with pytest.raises(NotFound):
        drive.stat("model.pth")


def test_titles_match_exactly_although_drive_query_ignores_case(drive, settings, drive_emulator):
    folder = settings["folder_id"]
    drive_emulator.create_file("Model.pth", b"upper", parent=folder)
    drive_emulator.create_file("model.pth", b"lower!", parent=folder)
    assert drive.stat("Model.pth").size == 5
    assert drive.stat("model.pth").size == 6
    with pytest.raises(NotFound):
        drive.stat("MODEL.pth")


def test_trashed_files_and_partial_uploads_are_invisible(drive, settings, drive_emulator):
    folder = settings["folder_id"]
    drive_emulator.create_file("gone.pth", b"x", parent=folder, trashed=True)
    drive_emulator.create_file("a.pth.ms-upload-0123.partial", b"x", parent=folder)
    drive_emulator.create_folder("sub", parent=folder)
    with pytest.raises(NotFound):
        drive.stat("gone.pth")
    assert list(drive.list()) == []
    drive.delete("gone.pth")  # nothing live to delete: not an error


def test_token_uri_from_the_key_file_is_used(settings, tmp_path, drive_emulator):
    drive_emulator.reset_counters()
    provider = open_provider("drive", settings, state_dir=tmp_path)
    assert list(provider.list()) == []
    # Offline, the only token endpoint that can answer is the emulator's, named in the key file.
    assert drive_emulator.counter("token_requests") == 1
    assert json.loads(Path(settings["service_account_file"]).read_text())["token_uri"] == (
        drive_emulator.token_uri
    )


def test_oauth_token_file_is_refreshed_at_its_token_uri(settings, tmp_path, drive_emulator):
    token_file = tmp_path / "token.json"
    token_file.write_text(
        json.dumps(
            {
                "_module": "oauth2client.client",
                "_class": "OAuth2Credentials",
                "access_token": None,
                "client_id": "client-id",
                "client_secret": "client-secret",
                "refresh_token": "refresh-123",
                "token_expiry": None,
                "token_uri": drive_emulator.token_uri,
                "user_agent": None,
                "invalid": False,
            }
        )
    )
    drive_emulator.add_refresh_token("refresh-123")
    cfg = {k: v for k, v in settings.items() if k != "service_account_file"}
    provider = open_provider("drive", {**cfg, "oauth_token_file": str(token_file)})
    assert list(provider.list()) == []


def test_missing_folder_is_not_found_with_a_clear_message(settings, drive_emulator):
    provider = open_provider("drive", {**settings, "folder_id": "no-such-folder"})
    with pytest.raises(NotFound, match=r"folder 'no-such-folder' does not exist or is not shared"):
        list(provider.list())
    file_id = drive_emulator.create_file("not-a-folder.txt", b"x")
    provider = open_provider("drive", {**settings, "folder_id": file_id})
    with pytest.raises(NotFound, match="is not a folder"):
        provider.stat("x")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"chunk_size": 1000}, "multiple of 256 KiB"),
        ({"oauth_token_file": "/nonexistent"}, "exactly one of"),
        ({"delete_mode": "shred"}, "delete_mode"),
    ],
)
def test_bad_settings_are_config_errors(settings, extra, message):
    with pytest.raises(ConfigError, match=message):
        open_provider("drive", {**settings, **extra})


def test_wrong_expected_hash_uploads_nothing(drive, settings, tmp_path, drive_emulator):
    src = _file(tmp_path, "m.pth", 1000)
    drive_emulator.reset_counters()
    with pytest.raises(IntegrityError):
        drive.put("m.pth", src, expected_hashes={"sha256": "0" * 64})
    assert drive_emulator.counter("upload_bytes") == 0
    assert drive_emulator.files_in(settings["folder_id"]) == []


def test_tampered_sha256_property_fails_get_and_leaves_no_file(
    drive, settings, tmp_path, drive_emulator
):
    drive.put("m.pth", _file(tmp_path, "m.pth", 5000))
    (stored,) = drive_emulator.files_in(settings["folder_id"])
    stored.properties["sha256"] = "f" * 64  # another writer's claim; only as good as the writer
    with pytest.raises(IntegrityError, match="sha256"):
        drive.get("m.pth", tmp_path / "out" / "m.pth")
    assert not (tmp_path / "out" / "m.pth").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_conditional_small_writes(drive):
    first = drive.capabilities.put_bytes("catalog.json", b'{"v": 1}', if_none_match=True)
    with pytest.raises(PreconditionFailed):
        drive.capabilities.put_bytes("catalog.json", b'{"v": 2}', if_none_match=True)
    second = drive.capabilities.put_bytes("catalog.json", b'{"v": 2}', if_match=first.etag)
    with pytest.raises(PreconditionFailed):
        drive.capabilities.put_bytes("catalog.json", b'{"v": 3}', if_match=first.etag)  # stale etag
    data, info = drive.capabilities.get_bytes("catalog.json")
    assert data == b'{"v": 2}'
    assert info.etag == second.etag != first.etag


def test_storage_quota_is_reported_and_not_retried(drive, tmp_path, drive_emulator):
    drive_emulator.set_quota(0)
    drive_emulator.reset_counters()
    with pytest.raises(QuotaExceeded, match="quota"):
        drive.put("big.pth", _file(tmp_path, "big.pth", 10_000))
    assert drive_emulator.counter("POST /upload/drive/v2/files") == 1


def test_upload_corrupted_in_transit_leaves_old_object_intact(
    drive, settings, tmp_path, drive_emulator
):
    good = tmp_path / "good"
    good.write_bytes(b"known good weights")
    drive.put("model.pth", good)
    drive_emulator.corrupt_next_uploads(1)
    with pytest.raises(IntegrityError, match="md5"):
        drive.put("model.pth", _file(tmp_path, "new.pth", 3 * GDRIVE_TEST_CHUNK))
    live = drive_emulator.files_in(settings["folder_id"])
    assert [(f.title, f.data) for f in live] == [("model.pth", b"known good weights")]


def test_delete_mode_delete_removes_for_good(settings, tmp_path, drive_emulator):
    provider = open_provider("drive", {**settings, "delete_mode": "delete"})
    provider.capabilities.put_bytes("old.json", b"{}")
    provider.delete("old.json")
    provider.delete("old.json")
    assert drive_emulator.files_in(settings["folder_id"], include_trashed=True) == []


def test_keys_that_look_like_temporary_uploads_are_refused(drive, tmp_path):
    with pytest.raises(ValueError, match="temporary"):
        drive.put("m.pth.ms-upload-1.partial", _file(tmp_path, "m", 1))


def test_drive_settings_are_the_keys_checked_at_config_load():
    import dataclasses

    from providers.config import BACKEND_KEYS
    from providers.gdrive.config import DriveSettings

    assert {f.name for f in dataclasses.fields(DriveSettings)} == set(
        BACKEND_KEYS["gdrive"].allowed
    )
