"""Corruption: a bit flip or a truncation in a local version, in a remote object, in the local
catalog and in the remote catalog. ``verify`` finds each (exit 3, a line naming it) and
``repair`` (or the next run) heals it: afterwards every copy is intact on both sides."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from providers import open_provider
from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_dir,
    snapshot_dir,
    snapshot_remote,
    stray_temps,
)
from tests.reliability.ledger import said
from tests.support import SyncProject, cli_env, run_subprocess


def flip_bit(path: Path, offset: int | None = None) -> None:
    """Invert one bit in the middle of the file (in place: same size, same mtime resolution)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x10
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(data[at : at + 1])


def truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


DAMAGE: dict[str, Callable[[Path], None]] = {"bit flip": flip_bit, "truncation": truncate}


def cli(root: Path, *args: str) -> tuple[int, str]:
    proc = run_subprocess(list(args), root, env=cli_env())
    return proc.returncode, proc.stdout + proc.stderr


def ok(root: Path, *args: str) -> str:
    code, out = cli(root, *args)
    assert code == 0, (args, out)
    return out


@pytest.fixture(scope="module")
def mirrored_template(tmp_path_factory) -> SyncProject:
    """Built once: a project with one dated version, pushed to a local remote."""
    base = tmp_path_factory.mktemp("mirrored")
    (base / "nas").mkdir()
    proj = SyncProject.create(
        base / "proj", {"type": "local", "path": str(base / "nas" / "model-backups")}
    )
    proj.write_model(seed=4)
    ok(proj.root, "backup", "--kind", "version")
    ok(proj.root, "push")
    return proj


@pytest.fixture
def mirrored(mirrored_template, tmp_path) -> SyncProject:
    """A fresh copy of the template (project and remote), every file on both sides."""
    src = mirrored_template
    shutil.copytree(src.root, tmp_path / "proj")
    shutil.copytree(Path(src.remote["path"]).parent, tmp_path / "nas")
    proj = SyncProject(
        tmp_path / "proj",
        tmp_path / "proj" / "models",
        tmp_path / "proj" / "config.yaml",
        {"type": "local", "path": str(tmp_path / "nas" / "model-backups")},
    )
    proj.write_config()
    return proj


def sides(proj: SyncProject, tmp_path: Path) -> dict[str, dict[str, str]]:
    provider = open_provider("r", proj.remote, state_dir=tmp_path / "check-state")
    try:
        return {"local": snapshot_dir(proj.models), "remote": snapshot_remote(provider)}
    finally:
        provider.close()


def version_of(proj: SyncProject) -> str:
    (version,) = [p.name for p in proj.models.glob("dinesh_ai_model_v*.pth")]
    return version


def finish(case, proj: SyncProject, tmp_path: Path, before: dict, sizes: dict, how: str) -> None:
    """After the heal: both sides equal what was there before the damage, nothing left over."""
    after = sides(proj, tmp_path)
    assert after["local"] == before["local"], "local side not healed"
    assert after["remote"] == before["remote"], "remote side not healed"
    case.lost_bytes = lost_bytes(before, after, sizes)
    assert case.lost_bytes == 0
    assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []
    assert stray_temps(Path(proj.remote["path"])) == []
    ok(proj.root, "verify")
    ok(proj.root, "verify", "--remote", "r", "--deep")
    case.verified = f"{how}; both sides sha256-equal to before; verify and verify --deep exit 0"


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_local_version(ledger, mirrored, tmp_path, damage):
    proj = mirrored
    with ledger.case(
        fault=f"{damage} in a local version",
        where="models_dir/<model>_v<date>.pth, in place",
        user_sees="`verify` exit 3 naming the version; `repair` pulls the remote copy back",
    ) as case:
        before = sides(proj, tmp_path)
        sizes = sizes_dir(proj.models)
        version = version_of(proj)
        DAMAGE[damage](proj.models / version)
        code, out = cli(proj.root, "verify")
        assert code == 3, out
        assert any(version in line for line in out.splitlines()), out
        repaired = ok(proj.root, "repair")
        case.transfers_completed += 1
        finish(case, proj, tmp_path, before, sizes, "repair: " + said(repaired, proj.root))


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_remote_object(ledger, mirrored, tmp_path, damage):
    proj = mirrored
    with ledger.case(
        fault=f"{damage} in a remote object",
        where="the remote's copy of the dated version (local remote, bytes changed in place)",
        user_sees="`verify --remote r --deep` exit 3 naming it; `repair --deep` re-uploads it",
    ) as case:
        before = sides(proj, tmp_path)
        sizes = sizes_dir(proj.models)
        version = version_of(proj)
        DAMAGE[damage](Path(proj.remote["path"]) / version)
        code, out = cli(proj.root, "verify", "--remote", "r", "--deep")
        assert code == 3, out
        assert any(version in line for line in out.splitlines()), out
        repaired = ok(proj.root, "repair", "--deep")
        case.transfers_completed += 1
        finish(case, proj, tmp_path, before, sizes, "repair --deep: " + said(repaired, proj.root))


def flip_in_sha(catalog: Path, name: str, remote: bool) -> None:
    """A bit flip that keeps the catalog valid JSON: one hex digit in the sha256 of entry
    ``name`` becomes another (bit 0 of '0'/'2'/'4'/'6'/'8'), so the catalog silently records a
    wrong checksum for that copy. Written back with the catalog's own layout (indent=1)."""
    text = catalog.read_text()
    doc = json.loads(text)
    files = doc["files"] if remote else {e["name"]: e for e in doc["files"]}
    sha = files[name]["sha256"]
    at = next(i for i, ch in enumerate(sha) if ch in "02468")
    files[name]["sha256"] = sha[:at] + chr(ord(sha[at]) ^ 1) + sha[at + 1 :]
    out = json.dumps(doc, indent=1) + ("\n" if text.endswith("\n") else "")
    assert len(out) == len(text), "the flip must change one character only"
    catalog.write_text(out)


# catalog damage -> (what `verify` names, the command that heals it)
CATALOG_DAMAGE = {"bit flip": ("version", "repair"), "truncation": ("catalog", "run")}


@pytest.mark.parametrize("damage", CATALOG_DAMAGE)
def test_damaged_local_catalog(ledger, mirrored, tmp_path, damage):
    proj = mirrored
    names, heal = CATALOG_DAMAGE[damage]
    with ledger.case(
        fault=f"{damage} in the local catalog",
        where="models_dir/.model-safety/catalog.json"
        + (" (a sha256 digit of a version's entry)" if damage == "bit flip" else ""),
        user_sees=f"`verify` exit 3 naming the {names}; `{heal}` heals it",
    ) as case:
        before = sides(proj, tmp_path)
        sizes = sizes_dir(proj.models)
        version = version_of(proj)
        catalog = proj.models / ".model-safety" / "catalog.json"
        if damage == "bit flip":
            flip_in_sha(catalog, version, remote=False)
        else:
            truncate(catalog)
        code, out = cli(proj.root, "verify")
        assert code == 3, out
        word = version if names == "version" else "catalog"
        assert any(word in line for line in out.splitlines()), out
        healed = ok(proj.root, heal)
        case.transfers_completed += 1
        finish(case, proj, tmp_path, before, sizes, f"{heal}: " + said(healed, proj.root))


@pytest.mark.parametrize("damage", CATALOG_DAMAGE)
def test_damaged_remote_catalog(ledger, mirrored, tmp_path, damage):
    proj = mirrored
    names, _ = CATALOG_DAMAGE[damage]
    with ledger.case(
        fault=f"{damage} in the remote catalog",
        where="<remote>/.model-safety/catalog.json"
        + (" (a sha256 digit of a version's entry)" if damage == "bit flip" else ""),
        user_sees=f"`verify --remote r` exit 3 naming the {names}; `repair` rewrites it",
    ) as case:
        before = sides(proj, tmp_path)
        sizes = sizes_dir(proj.models)
        version = version_of(proj)
        catalog = Path(proj.remote["path"]) / ".model-safety" / "catalog.json"
        if damage == "bit flip":
            flip_in_sha(catalog, version, remote=True)
        else:
            truncate(catalog)
        code, out = cli(proj.root, "verify", "--remote", "r")
        assert code == 3, out
        word = version if names == "version" else "catalog"
        assert any(word in line for line in out.splitlines()), out
        healed = ok(proj.root, "repair")
        ok(proj.root, "push")  # records the current files, which only a push vouches for
        case.transfers_completed += 1
        code, out = cli(proj.root, "verify", "--remote", "r")
        assert code == 0 and "unrecorded" not in out, out
        finish(case, proj, tmp_path, before, sizes, "repair: " + said(healed, proj.root))
