"""What a person reads: one size convention everywhere, and one table style for the local and
the remote listing (with a header and the backup's note)."""

from __future__ import annotations

import json
import re

from tests.support import write_sized_checkpoint

BIG = 150 * 1024 * 1024  # 150.0 MiB; 157.3 MB in decimal units


def with_local_remote(project, tmp_path) -> None:
    remote = tmp_path / "nas"
    remote.mkdir()
    project.config.write_text(
        project.config.read_text()
        + f"  remotes:\n    nas: {{type: local, path: {remote / 'model-backups'}}}\n"
    )


def rows(out: str) -> list[list[str]]:
    """The table's lines split on its column gaps (two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip()]


def test_sizes_are_binary_and_labelled_so_in_list_and_status(cli, project):
    write_sized_checkpoint(project.model(), BIG)
    assert cli("backup").code == 0
    listing = cli("list")
    assert listing.code == 0, listing.err
    assert listing.out.count("150.0 MiB") == 2  # current and backup slot
    status = cli("status", "--local")
    assert status.code == 0, status.err
    assert "current           150.0 MiB" in status.out
    assert not re.search(r"\d (KB|MB|GB|TB)\b", listing.out + status.out)


def test_push_and_pull_summaries_use_the_same_units(cli, project, tmp_path):
    with_local_remote(project, tmp_path)
    push = cli("push")
    assert push.code == 0, push.err
    summary = push.out.strip().splitlines()[-1]
    assert re.fullmatch(r"nas: 2 file\(s\), \d+\.\d KiB sent, 0 B copied server-side, .*s", summary)
    project.model().unlink()
    pull = cli("pull")
    assert pull.code == 0, pull.err
    assert re.search(r"nas: \d file\(s\), \d+\.\d KiB received", pull.out)
    project.write_model(seed=3)
    size = project.model().stat().st_size + project.tokenizer().stat().st_size
    exact = cli("push", "--json")  # --json keeps exact byte counts
    assert exact.code == 0, exact.err
    assert [r["bytes_sent"] for r in json.loads(exact.out)] == [size]


def test_local_and_remote_listings_share_one_table_style_with_the_note(cli, project, tmp_path):
    with_local_remote(project, tmp_path)
    assert cli("backup", "--note", "before fine-tune on data v7").code == 0
    assert cli("push").code == 0
    local = rows(cli("list").out)
    remote = rows(cli("list", "--remote", "nas").out)
    shared = ["NAME", "KIND", "DATE", "SIZE", "SHA256", "STATE"]
    assert local[0][:6] == shared and local[0][-1] == "NOTE"
    assert remote[0][:6] == shared and remote[0][-1] == "NOTE"
    backup_local = next(r for r in local if r[0] == "dinesh_ai_model_backup.pth")
    backup_remote = next(r for r in remote if r[0] == "dinesh_ai_model_backup.pth")
    assert backup_local[-1] == backup_remote[-1] == "before fine-tune on data v7"
    # name, date, size, sha256 prefix and state read the same on both sides
    assert backup_local[:6] == backup_remote[:6]
    # --json: the fields it had, plus the note on the remote side
    files = json.loads(cli("list", "--remote", "nas", "--json").out)["files"]
    row = next(f for f in files if f["name"] == "dinesh_ai_model_backup.pth")
    assert {"name", "kind", "date", "size", "sha256", "state", "detail", "verified_at"} <= set(row)
    assert row["note"] == "before fine-tune on data v7"
