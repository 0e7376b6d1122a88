"""Clock trouble: a dated version "from the future" (a file named with a date after today, e.g.
copied from a machine whose clock was wrong) and a wrong system date (simulated with the hidden
``run --today``). Retention never deletes the newest good version because of it, says what it
did, and the periodic job keeps making new versions."""

from __future__ import annotations

import shutil

from tests.reliability.invariants import lost_bytes, sizes_dir, snapshot_dir, stray_temps
from tests.support import MODEL_FILE, run_subprocess


def run_on(project, day: str) -> str:
    proc = run_subprocess(["run", "--today", day], project.root)
    assert proc.returncode == 0, (day, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def version(day: str, seq: str = "") -> str:
    return f"dinesh_ai_model_v{day}{seq}.pth"


def test_versions_from_the_future_do_not_push_out_the_newest(ledger, project):
    project.write_config(max_backups=2)
    with ledger.case(
        fault="dated versions from the future",
        where="two files named *_v2099-01-01* in models_dir (copied from a machine with a "
        "wrong clock)",
        user_sees="a warning naming them; they are kept but not counted; the new version is "
        "made and kept",
    ) as case:
        project.write_model(seed=21)
        run_on(project, "2026-11-10")
        project.write_model(seed=22)
        run_on(project, "2026-11-17")
        for seq in ("", ".2"):  # the stray future copies, both with their tokenizer
            shutil.copy(
                project.models / version("2026-11-10"), project.models / version("2099-01-01", seq)
            )
            shutil.copy(
                project.models / "tokenizer_v2026-11-10.json",
                project.models / f"tokenizer_v2099-01-01{seq}.json",
            )
        project.write_model(seed=23)
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        out = run_on(project, "2026-11-24")
        case.transfers_completed += 1
        after = snapshot_dir(project.models)
        newest = version("2026-11-24")
        assert newest in after, ("the run made no version, or retention deleted it", out)
        assert after[newest] == after[MODEL_FILE]
        assert version("2026-11-17") in after, "keep_last 2 counts the real versions only"
        assert version("2099-01-01") in after and version("2099-01-01", ".2") in after
        assert "2099-01-01" in out and "after today" in out, out
        # Only the oldest real version may go (keep_last 2 of the real ones).
        gone = {n for n in before["local"] if n not in after}
        assert gone <= {version("2026-11-10"), "tokenizer_v2026-11-10.json"}, gone
        kept = {
            side: {n: s for n, s in snap.items() if n not in gone} for side, snap in before.items()
        }
        case.lost_bytes = lost_bytes(kept, {"local": after}, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(project.models) == []
        case.verified = (
            f"new version {newest} made and kept with the previous one; future ones kept; "
            "warning printed"
        )


def test_a_clock_set_back_does_not_delete_the_version_just_made(ledger, project):
    project.write_config(max_backups=2)
    with ledger.case(
        fault="wrong system date (clock set back to 2020)",
        where="`run --today 2020-01-01` after versions dated 2026",
        user_sees="the new version is made (named 2020-01-01) and kept; a warning that the "
        "existing versions are dated after today",
    ) as case:
        for seed, day in ((31, "2026-11-10"), (32, "2026-11-17")):
            project.write_model(seed=seed)
            run_on(project, day)
        project.write_model(seed=33)
        before = {"local": snapshot_dir(project.models)}
        sizes = sizes_dir(project.models)
        out = run_on(project, "2020-01-01")
        case.transfers_completed += 1
        after = snapshot_dir(project.models)
        made = version("2020-01-01")
        assert made in after, ("retention deleted the version just made", out)
        assert after[made] == after[MODEL_FILE] == before["local"][MODEL_FILE]
        assert "after today" in out, out
        case.lost_bytes = lost_bytes(before, {"local": after}, sizes)
        assert case.lost_bytes == 0  # nothing deleted at all: every date is in doubt
        assert stray_temps(project.models) == []
        # Clock fixed: the next run is normal again.
        project.write_model(seed=34)
        out = run_on(project, "2026-11-24")
        assert version("2026-11-24") in snapshot_dir(project.models), out
        case.verified = f"{made} holds the current model and is kept; no file deleted; next run ok"
