"""Fidelity of the Drive emulator itself: unmodified pydrive2 works against it, and its ``q``
language, paging and upload sessions behave like Drive's for what we rely on."""

from __future__ import annotations

import pytest

from providers.gdrive.client import connect


@pytest.fixture
def pydrive(drive_emulator, drive_service_account):
    from pydrive2.drive import GoogleDrive

    session = connect(
        "emulator",
        service_account_file=drive_service_account,
        oauth_token_file=None,
        root_url=drive_emulator.url,
        http_timeout=30,
    )
    return GoogleDrive(session.auth)


@pytest.fixture
def folder(drive_emulator):
    return drive_emulator.create_folder("fidelity")


def _titles(pydrive, q: str, **params) -> list[str]:
    return sorted(f["title"] for f in pydrive.ListFile({"q": q, **params}).GetList())


def test_pydrive2_high_level_api_round_trip(pydrive, folder):
    f = pydrive.CreateFile({"title": "hello.txt", "parents": [{"id": folder}]})
    f.SetContentString("hello world")
    f.Upload()
    assert f["fileSize"] == "11"  # a string, as on Drive
    assert f["md5Checksum"] == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    again = pydrive.CreateFile({"id": f["id"]})
    assert again.GetContentString() == "hello world"
    again.Trash()
    assert _titles(pydrive, f"'{folder}' in parents and trashed = false") == []
    assert _titles(pydrive, f"'{folder}' in parents") == ["hello.txt"]  # trash is listed
    again.Delete()
    assert _titles(pydrive, f"'{folder}' in parents") == []


def test_query_language_subset(pydrive, folder, drive_emulator):
    for title in ("Model.pth", "model.pth", "tokenizer.json", "it's here"):
        drive_emulator.create_file(title, b"x", parent=folder)
    inside = f"'{folder}' in parents"
    assert _titles(pydrive, f"{inside} and title = 'MODEL.PTH'") == ["Model.pth", "model.pth"]
    assert _titles(pydrive, f"{inside} and title contains 'token'") == ["tokenizer.json"]
    assert _titles(pydrive, f"{inside} and title = 'it\\'s here'") == ["it's here"]
    assert _titles(
        pydrive,
        f"{inside} and (title = 'model.pth' or title contains 'json') and not title contains 'tok'",
    ) == ["Model.pth", "model.pth"]


def test_unsupported_query_is_rejected_loudly(pydrive, folder):
    from pydrive2.files import ApiRequestError

    with pytest.raises(ApiRequestError, match="400"):
        _titles(pydrive, f"'{folder}' in parents and modifiedDate > '2024-01-01'")


def test_paging_returns_every_file_once(pydrive, folder, drive_emulator):
    for i in range(7):
        drive_emulator.create_file(f"f{i}", b"", parent=folder)
    pages = list(pydrive.ListFile({"q": f"'{folder}' in parents", "maxResults": 3}))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(f["title"] for p in pages for f in p) == [f"f{i}" for i in range(7)]


def test_missing_bearer_token_is_401(drive_emulator):
    import httplib2

    resp, _ = httplib2.Http().request(drive_emulator.url + "drive/v2/files", "GET")
    assert resp.status == 401


def test_discovery_document_points_at_the_emulator(drive_emulator):
    import json

    import httplib2

    url = drive_emulator.url + "discovery/v1/apis/drive/v2/rest"
    resp, body = httplib2.Http().request(url, "GET")
    assert resp.status == 200
    doc = json.loads(body)
    assert doc["rootUrl"] == drive_emulator.url
    assert doc["baseUrl"] == drive_emulator.url + "drive/v2/"
