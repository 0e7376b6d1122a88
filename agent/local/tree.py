"""Directory copies in the models dir, for models saved as directories (a Hugging Face
``save_pretrained`` folder, a torch.distributed.checkpoint).

A directory copy is staged as a hidden temp directory beside its final name
(``.llama-ft_v2026-11-30.<12 hex>.incomplete``): every file is copied into it atomically
(``hashing.copy_to_temp``: its own temp, fsync, checked against the sha256 expected, renamed),
every directory in it fsynced, and only then is the whole directory renamed into place. A
directory that takes the place of another is swapped in with one ``renameat2(RENAME_EXCHANGE)``
where the kernel has it (two renames otherwise), so the name always holds one whole copy. A
kill at any step leaves a hidden temp directory, removed by the next run
(``remove_stale_temps``), and either no copy or a complete one.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from pathlib import Path

from agent.errors import ModelFileError
from agent.faultpoints import crash_point
from agent.local.hashing import OUR_TEMP_RE, fsync_dir, temp_path
from providers import fileio

# (source file, destination) -> (verified temp beside the destination, sha256); the store's copy
CopyFn = Callable[[Path, Path, str | None], tuple[Path, str]]


def walk_files(root: Path) -> list[str]:
    """Every file in directory ``root``, as sorted relative posix paths. A link to a file counts
    as that file (its bytes are copied); a link to a directory, a socket or a fifo is refused:
    everything in the directory belongs to the model, so nothing may be left out silently."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                raise ModelFileError(
                    f"{here / name} is a link to a directory; a directory model holds files and "
                    "plain directories only"
                )
        for name in filenames:
            path = here / name
            if not path.is_file():
                raise ModelFileError(f"{path} is not a regular file (a broken link or a device)")
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _raise(exc: OSError) -> None:
    raise exc


def tree_size(root: Path) -> int:
    return sum((root / rel).stat().st_size for rel in walk_files(root))


def check_dir_source(path: Path, what: str = "model directory") -> int:
    """The total size of a directory we are about to copy, or a ModelFileError that says what is
    wrong with it."""
    if not path.exists():
        raise ModelFileError(
            f"{what} {path} does not exist; restore it with `model-safety restore` "
            "or fix `file:` in config.yaml"
        )
    if not path.is_dir():
        raise ModelFileError(f"{what} {path} is not a directory (`file:` names a directory model)")
    try:
        files = walk_files(path)
        size = sum((path / rel).stat().st_size for rel in files)
    except PermissionError as exc:
        raise ModelFileError(f"cannot read {what} {path}: {exc}") from None
    if not files:
        raise ModelFileError(f"{what} {path} is empty; refusing to back up an empty checkpoint")
    return size


def stage_tree(
    src_root: Path,
    dest: Path,
    copy: CopyFn,
    expected: Mapping[str, tuple[int, str]] | None = None,
    known: Callable[[Path, os.stat_result], str | None] | None = None,
) -> tuple[Path, dict[str, tuple[int, str]]]:
    """Copy directory ``src_root`` into a new hidden temp directory beside ``dest``; returns
    (temp directory, manifest of what was written). With ``expected`` (a copy's manifest) exactly
    its files are copied, each checked against its sha256 (FileNotFoundError / HashMismatch
    name the file); without, every file found, each checked against ``known`` (the hash cache)
    when it knows the file. The caller renames the temp into place or discards it."""
    temp = temp_path(dest)
    temp.mkdir()
    manifest: dict[str, tuple[int, str]] = {}
    try:
        names = sorted(expected) if expected is not None else walk_files(src_root)
        for rel in names:
            src = src_root / rel
            if not src.is_file():
                raise FileNotFoundError(errno.ENOENT, "missing from the copy", str(src))
            st = src.stat()
            want = expected[rel][1] if expected is not None else (known and known(src, st))
            out = temp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            file_temp, sha = copy(src, out, want or None)
            fileio.replace(file_temp, out)
            now = src.stat()
            if (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                raise ModelFileError(f"{src} changed while it was being copied; try again")
            manifest[rel] = (st.st_size, sha)
            crash_point("tree-file-copied")  # test-only: part of a directory staged
        fsync_dirs(temp, manifest)
    except BaseException:
        discard(temp)
        raise
    return temp, manifest


def fsync_dirs(root: Path, rels: Iterable[str]) -> None:
    """fsync every directory under ``root`` holding one of ``rels``, deepest first, so the
    names of a staged tree's files are durable before the tree is renamed into place."""
    for directory in sorted({(root / rel).parent for rel in rels}, reverse=True):
        fsync_dir(directory)


def put_in_place(temp: Path, dest: Path) -> Path | None:
    """Rename directory ``temp`` to ``dest``. When ``dest`` exists, the two are exchanged in one
    step and the old content, now under the hidden temp name, is returned for the caller to
    set aside or discard."""
    if not os.path.lexists(dest):
        fileio.replace(temp, dest)
        fsync_dir(dest.parent)
        return None
    if _exchange(temp, dest):
        crash_point("tree-exchanged")  # test-only: new copy in place, old one under the temp
        fsync_dir(dest.parent)
        return temp
    # no RENAME_EXCHANGE here: for a moment the name is free; a kill then leaves both copies
    # under hidden temp names, the old one removed by the next run like any leftover
    old = temp_path(dest)
    fileio.replace(dest, old)
    fileio.replace(temp, dest)
    fsync_dir(dest.parent)
    return old


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # no libc symbol table (Windows)
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def remove_tree(path: Path) -> None:
    """Delete a directory copy: first renamed to a hidden temp name (one step), so a kill
    mid-delete never leaves part of a copy under a copy's name; the next run finishes it."""
    if not path.is_dir() or path.is_symlink():
        with suppress(FileNotFoundError):
            path.unlink()
        return
    doomed = temp_path(path)
    fileio.replace(path, doomed)
    fsync_dir(path.parent)
    crash_point("tree-remove")  # test-only: renamed away, not yet deleted
    shutil.rmtree(doomed, ignore_errors=True)


def discard(temp: Path) -> None:
    """Remove a temp file or temp directory, if it is still there."""
    if temp.is_dir() and not temp.is_symlink():
        shutil.rmtree(temp, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            temp.unlink()


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with suppress(OSError):
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def remove_stale_temps(directory: Path, max_age_s: float = 600) -> list[str]:
    """Delete our temp files and temp directories that nobody has written to for ``max_age_s``
    (left by kill -9 or a power cut). A copy in progress keeps its temp's mtime fresh (for a
    directory: its newest file's), so it is never touched. ``max_age_s <= 0``: all of them (the
    caller knows no copy is in progress)."""
    removed = []
    now = time.time()
    try:
        candidates = [p for p in directory.iterdir() if OUR_TEMP_RE.fullmatch(p.name)]
    except OSError:
        return removed
    for path in candidates:
        with suppress(OSError):
            is_dir = path.is_dir() and not path.is_symlink()
            age = now - (_newest_mtime(path) if is_dir else path.stat().st_mtime)
            if max_age_s <= 0 or age > max_age_s:
                discard(path)
                removed.append(path.name)
    return removed
