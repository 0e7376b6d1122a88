"""What a new user meets when following the README with a local-disk remote: listing order,
pull's options and messages, and the catalog a pull leaves behind."""

from __future__ import annotations

import json
import shutil

from tests.support import MODEL_FILE, SyncProject


def local_project(tmp_path, name: str = "p", remote: str = "nas") -> SyncProject:
    (tmp_path / remote).mkdir(exist_ok=True)
    proj = SyncProject.create(
        tmp_path / name, {"type": "local", "path": str(tmp_path / remote / "backups")}
    )
    proj.write_model(seed=1)
    return proj


def model_rows(listing: str) -> list[str]:
    """The model-file names of a `list` table, in the order shown."""
    names = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    return [n for n in names if n.startswith("dinesh_ai_model")]


def test_remote_listing_sorts_versions_like_the_local_one(tmp_path, ms):
    """Eleven versions on one day: `.10` after `.9`, the first (no number) oldest; the same
    order as the local `list`, which was already right."""
    proj = local_project(tmp_path)
    for seed in range(11):
        proj.write_model(seed=100 + seed)
        res = ms(proj.root, "backup", "--kind", "version")
        assert res.code == 0, res.err
    assert ms(proj.root, "push").code == 0
    local = ms(proj.root, "list")
    remote = ms(proj.root, "list", "--remote", "r")
    assert local.code == 0 and remote.code == 0, remote.err
    local_versions = [n for n in model_rows(local.out) if "_v" in n]
    remote_versions = [n for n in model_rows(remote.out) if "_v" in n]
    assert len(remote_versions) == 11
    assert remote_versions == local_versions
    assert remote_versions[0].endswith(".11.pth") and remote_versions[1].endswith(".10.pth")
    assert "_v" in remote_versions[-1] and remote_versions[-1].count(".") == 1  # the day's first
    assert model_rows(remote.out)[0] == MODEL_FILE  # the current file first, as locally
    as_json = json.loads(ms(proj.root, "list", "--remote", "r", "--json").out)["files"]
    assert [r["name"] for r in as_json if r["name"] in remote_versions] == remote_versions


def two_remote_project(tmp_path) -> SyncProject:
    """Remotes ``r`` then ``spare`` (config order), both local disks."""
    proj = local_project(tmp_path)
    (tmp_path / "spare").mkdir()
    spare = {"type": "local", "path": str(tmp_path / "spare" / "backups")}
    proj.write_config(auto_push=False, extra_remotes={"spare": spare})
    return proj


def test_pull_all_takes_each_model_from_the_first_remote_that_has_it(tmp_path, ms):
    proj = two_remote_project(tmp_path)
    data = proj.write_model(seed=5)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push", "--remote", "spare").code == 0  # `r` stays empty
    shutil.rmtree(proj.models)

    advice = ms(proj.root, "pull")
    assert advice.code == 2 and "--all" in advice.err
    res = ms(proj.root, "pull", "--all")
    assert res.code == 0, res.out + res.err
    assert "served by remote spare" in res.out
    assert (proj.models / MODEL_FILE).read_bytes() == data

    # the first remote unreachable (its disk unmounted): passed over, named, the next serves
    shutil.rmtree(tmp_path / "nas")
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull", "--all", "--version", "all")
    assert res.code == 0, res.out + res.err
    assert "remote 'r'" in res.err and "served by remote spare" in res.out
    assert len(list(proj.models.glob("dinesh_ai_model_v*.pth"))) == 1


def test_pull_all_fails_when_no_remote_has_the_version(tmp_path, ms):
    proj = two_remote_project(tmp_path)
    assert ms(proj.root, "push", "--all").code == 0
    res = ms(proj.root, "pull", "--all", "--version", "2001-01-01")
    assert res.code == 1
    assert "no remote (r, spare) has a good copy" in res.err


def test_a_pull_leaves_the_local_catalog_written(tmp_path, ms):
    """After a clean recovery the next command finds nothing to rebuild or warn about."""
    proj = local_project(tmp_path)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull", "--remote", "r")
    assert res.code == 0, res.err
    assert (proj.models / ".model-safety" / "catalog.json").is_file()
    again = ms(proj.root, "pull", "--version", "all")
    assert again.code == 0, again.err
    assert "rebuilt" not in again.err and "WARNING" not in again.err


def test_pull_version_takes_a_file_name_like_restore_from(tmp_path, ms):
    proj = local_project(tmp_path)
    first = proj.write_model(seed=21)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    proj.write_model(seed=22)
    assert ms(proj.root, "backup", "--kind", "version").code == 0
    assert ms(proj.root, "push").code == 0
    names = sorted(p.name for p in proj.models.glob("dinesh_ai_model_v*.pth"))
    older = min(names, key=len)  # the day's first version has no same-day number
    shutil.rmtree(proj.models)

    res = ms(proj.root, "pull", "--version", older)
    assert res.code == 0, res.out + res.err
    assert (proj.models / older).read_bytes() == first
    assert (proj.models / MODEL_FILE).read_bytes() == first  # no current: restored from it
    tokenizer_version = older.replace("dinesh_ai_model", "tokenizer").replace(".pth", ".json")
    assert (proj.models / tokenizer_version).is_file()  # its companion came with it
    assert not (proj.models / max(names, key=len)).exists()  # only what was asked

    for bad, why in [
        ("../" + older, "is not latest, backup, all"),
        ("someone_elses.pth", "is not latest, backup, all"),
        (tokenizer_version, "companion"),
    ]:
        res = ms(proj.root, "pull", "--version", bad)
        assert res.code == 1 and why in res.err, res.err


def test_each_line_of_run_and_sync_names_its_side_once(tmp_path, ms):
    """An unreachable remote is named once per line; local retention says `local:` like each
    remote's lines say the remote's name."""
    proj = local_project(tmp_path)
    gone = {"type": "local", "path": str(tmp_path / "unmounted" / "backups"), "auto_push": True}
    proj.write_config(max_backups=2, retention={"keep_last": 2}, extra_remotes={"gone": gone})
    out = ""
    for week in range(4):
        proj.write_model(seed=50 + week)
        res = ms(proj.root, "run", "--today", f"2026-01-{5 + 7 * week:02d}")
        assert res.code == 3, res.out + res.err  # the unreachable remote is a problem
        out += res.out + res.err
    lines = out.splitlines()
    assert any(line.startswith("local: deleted dinesh_ai_model_v") for line in lines), out
    assert any(line.startswith("r: deleted dinesh_ai_model_v") for line in lines), out
    assert not [line for line in lines if line.lstrip().startswith("deleted")], out
    gone_lines = [line for line in lines if "gone" in line]
    assert gone_lines and all(line.count("remote") == 1 for line in gone_lines), gone_lines

    res = ms(proj.root, "sync")
    gone_lines = [line for line in res.err.splitlines() if "gone" in line]
    assert gone_lines and all(line.count("remote") == 1 for line in gone_lines), gone_lines
    assert any(line.startswith("local: keep") for line in res.out.splitlines()), res.out


def test_pull_without_a_model_brings_back_every_configured_model(tmp_path, ms):
    """After a dead disk with two models, `pull` brings both back; a model the remote never got
    is reported (exit 3) and does not stop the others."""
    from tests.support import write_checkpoint

    proj = local_project(tmp_path)
    models = [
        {"name": "dinesh_ai_model", "file": MODEL_FILE},
        {"name": "helper", "file": "helper.pth"},
    ]
    proj.write_config(models=models)
    first = (proj.models / MODEL_FILE).read_bytes()
    second = write_checkpoint(proj.models / "helper.pth", seed=7)
    assert ms(proj.root, "push").code == 0
    shutil.rmtree(proj.models)

    res = ms(proj.root, "pull")
    assert res.code == 0, res.out + res.err
    assert (proj.models / MODEL_FILE).read_bytes() == first
    assert (proj.models / "helper.pth").read_bytes() == second

    proj.write_config(models=[*models, {"name": "never_pushed", "file": "never_pushed.pth"}])
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull")
    assert res.code == 3, res.out + res.err
    assert "no good copy of never_pushed" in res.err
    assert (proj.models / MODEL_FILE).read_bytes() == first
    assert (proj.models / "helper.pth").read_bytes() == second
