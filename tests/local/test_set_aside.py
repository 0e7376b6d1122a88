"""Set-aside files (`<stem>_replaced-<time><ext>`, left by restores and rejected guards) are
counted by `status` and removed by `prune --replaced-older-than DAYS`, never the newest of each
file."""

from __future__ import annotations

import json

from tests.support import write_checkpoint

OLD = "dinesh_ai_model_replaced-20200101T000000000000.pth"  # set aside years ago


def set_aside(project) -> list[str]:
    return sorted(p.name for p in project.models.iterdir() if "_replaced-" in p.name)


def three_restores(cli, project) -> None:
    """A backup, then three fine-tunes each undone by a restore: each leaves the model and its
    tokenizer set aside."""
    assert cli("backup").code == 0
    for seed in (2, 3, 4):
        project.write_model(seed=seed)
        res = cli("restore", "--from", "backup", "--yes")
        assert res.code == 0, res.err


def test_status_counts_set_aside_files_per_model(cli, project):
    three_restores(cli, project)
    write_checkpoint(project.models / OLD, seed=9)
    files = set_aside(project)
    assert len(files) == 7
    total = sum((project.models / n).stat().st_size for n in files)
    report = json.loads(cli("status", "--local", "--json").out)["models"][0]
    assert (report["set_aside"], report["set_aside_bytes"]) == (7, total)
    text = cli("status", "--local").out
    assert "set aside         7 file(s), " in text and "--replaced-older-than" in text


def test_prune_removes_old_set_aside_files_but_never_the_newest(cli, project):
    three_restores(cli, project)
    write_checkpoint(project.models / OLD, seed=9)
    before = set_aside(project)

    dry = cli("prune", "--replaced-older-than", "30", "--dry-run")
    assert dry.code == 0, dry.err
    assert f"would delete  {OLD}: set aside 2020-01-01 00:00, more than 30 day(s) ago" in dry.out
    assert set_aside(project) == before  # a dry run deletes nothing

    res = cli("prune", "--replaced-older-than", "30")
    assert res.code == 0, res.err
    assert set_aside(project) == [n for n in before if n != OLD]  # recent ones stay

    res = cli("prune", "--replaced-older-than", "0", "--json")
    assert res.code == 0, res.err
    deleted = {d["name"] for d in json.loads(res.out)["set_aside"] if not d["keep"]}
    models = sorted(n for n in before if n.startswith("dinesh_ai_model_replaced-") and n != OLD)
    tokenizers = sorted(n for n in before if n.startswith("tokenizer_replaced-"))
    # the newest set-aside model and tokenizer (the last restore's) are kept, whatever their age
    assert set_aside(project) == sorted([models[-1], tokenizers[-1]])
    assert deleted == set(models[:-1]) | set(tokenizers[:-1])
    listed = {c["name"] for c in json.loads(cli("list", "--json").out)["copies"]}
    assert not deleted & listed  # gone from the catalog too
    assert cli("verify").code == 0


def test_replaced_older_than_is_for_the_models_dir_only(cli, project):
    res = cli("prune", "--remote", "nas", "--replaced-older-than", "7")
    assert res.code == 2 and "--replaced-older-than" in res.err
