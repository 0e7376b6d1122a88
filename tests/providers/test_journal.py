"""The one resume-journal format (providers.journal), whatever the transfer it serves: a torn
last line, a foreign file, another version or a damaged header never crash a transfer and never
make it trust a record; the file is private and appears whole or not at all."""

from __future__ import annotations

import json
import os
import stat

import pytest

from providers.journal import Journal, mark, resume_download, scan

HEADER = {"bucket": "b", "key": "k", "size": 10}


@pytest.fixture
def journal(tmp_path) -> Journal:
    return Journal(tmp_path / "journals", "s3-download", "b\0k\0dest")


def test_records_round_trip_and_a_torn_last_line_is_skipped(journal):
    journal.start(HEADER)
    mark(journal, 0)
    journal.append({"part": 2, "etag": '"e2"'})
    with open(journal.path, "ab") as f:
        f.write(b'{"m": 3')  # killed in the middle of an append
    assert journal.read() == (HEADER, [{"m": 0}, {"etag": '"e2"', "part": 2}])
    mark(journal, 5)  # the resumed transfer's first record is not lost with the torn line
    assert journal.read() == (HEADER, [{"m": 0}, {"etag": '"e2"', "part": 2}, {"m": 5}])


@pytest.mark.parametrize(
    "first_line",
    [
        b'{"journal": "model-safety", "version": 1, "kind": "s3-down',  # torn header
        b'{"bucket": "b", "key": "k", "upload_id": "u"}',  # an earlier release's own format
        b'{"journal": "model-safety", "version": 2, "kind": "s3-download", "header": {}}',
        b'{"journal": "model-safety", "version": 1, "kind": "gdrive-upload", "header": {}}',
        b"\x00\xff not json at all",
        b"[1, 2, 3]",
    ],
    ids=["torn", "old-format", "other-version", "other-kind", "binary", "not-an-object"],
)
def test_a_journal_it_cannot_trust_reads_as_absent_and_is_replaced(journal, first_line):
    journal.path.parent.mkdir(parents=True)
    journal.path.write_bytes(first_line + b'\n{"m": 1}\n')
    assert journal.read() == (None, [])
    journal.start(HEADER)  # the transfer starts afresh: the file is replaced, nothing raises
    assert journal.read() == (HEADER, [])


def test_journal_files_are_private_and_written_whole(journal, tmp_path):
    old = os.umask(0o022)
    try:
        journal.start(HEADER)
        mark(journal, 4)
    finally:
        os.umask(old)
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert os.listdir(journal.path.parent) == [journal.path.name]  # no temp file left
    envelope = json.loads(journal.path.read_text().splitlines()[0])
    assert (envelope["journal"], envelope["version"]) == ("model-safety", 1)
    journal.clear()
    journal.clear()  # clearing a missing journal is fine
    assert not journal.path.exists()


def test_scan_reports_unreadable_journals_without_a_header(tmp_path):
    good = Journal(tmp_path, "s3-upload", "one")
    good.start(HEADER)
    (tmp_path / ("0" * 32 + ".jsonl")).write_text("garbage\n")
    found = {j.path.name: header for j, header in scan(tmp_path, "s3-upload")}
    assert found == {good.path.name: HEADER, "0" * 32 + ".jsonl": None}


def test_resume_download_keeps_marks_of_the_same_download_only(journal, tmp_path):
    dest = tmp_path / "out" / "m.pth"
    dest.parent.mkdir()
    header = {"temp": str(dest.parent / ".m.pth.0123456789abcdef.incomplete"), "size": 10}
    journal.start(header)
    mark(journal, 0)
    mark(journal, 2)
    with open(journal.path, "ab") as f:
        f.write(b'{"m": 3')  # killed in the middle of an append
    assert resume_download(journal, header, dest, lambda marks: True) == [0, 2]
    assert resume_download(journal, header, dest, lambda marks: False) == []  # temp unusable
    assert journal.read() == (header, [])


def test_resume_download_deletes_only_our_temp_files(journal, tmp_path):
    dest = tmp_path / "out" / "m.pth"
    dest.parent.mkdir()
    header = {"temp": str(dest.parent / ".m.pth.0123456789abcdef.incomplete"), "size": 10}
    # A journal that names some other file (damaged, or hand-edited) never gets it deleted.
    precious = dest.parent / "m.pth.bak"
    precious.write_bytes(b"keep me")
    journal.start({**header, "temp": str(precious)})
    assert resume_download(journal, header, dest, lambda marks: True) == []
    assert precious.read_bytes() == b"keep me"
    assert journal.read() == (header, [])
