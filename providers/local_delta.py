"""The delta put of the ``local`` backend: a new object assembled beside its final name from
ranges copied off an object already on the remote (the unchanged tensors of a fine-tune) and
ranges written from the local file; ``Reuse`` in providers/base.py is the contract.

Copies run in the kernel (``copy_file_range``: a reflink on btrfs and xfs, a server-side copy on
NFS 4.2, a copy without a trip through user space elsewhere); where it is missing or refuses
(macOS, Windows, EXDEV across file systems) the bytes go through positional reads and writes
(``providers.fileio``).

The temp file has a fixed name per key (``.<name>.<32 hex>.incomplete``) and a journal of finished
ranges beside it (``.<name>.<32 hex>.jsonl.incomplete``, providers/journal.py's format), so a
process killed with -9 leaves what a later call resumes from, neither writing nor copying a
finished range again. Both match the local backend's temp-file pattern, so listings skip them
and ``abort_incomplete_uploads`` removes them once stale. The caller holds a per-key lock: two
agents sharing a NAS never write the same temp file.

Before the rename the temp file is read back whole and hashed: the copied ranges never passed
through Python, and a journal can outlive the bytes it vouches for (a power cut), so only the
assembled bytes themselves prove the object. Hashing the source's ranges while copying would
prove the source, not the temp file, and would still leave the ranges an earlier process
finished unhashed. The read-back also yields the sha256 and md5 the sidecar keeps.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from providers import fileio
from providers.base import BeforeCommitFn, ProgressFn, Reuse
from providers.errors import IntegrityError, PreconditionFailed
from providers.journal import Journal, mark, resume_download
from providers.transfer import CHUNK, Progress, commit_temp, hash_file, temp_path_for, verify

KIND = "local-put-reusing"
HASHES = ("sha256", "md5")
# copy_file_range's refusals that mean "not here", not "failed": copy through user space instead
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}

Identity = Callable[[os.stat_result], Mapping[str, str]]


def temp_paths(dest: Path) -> tuple[Path, Path]:
    """The temp file and its journal for ``dest``: fixed names, so a new process finds them."""
    tag = hashlib.sha256(f"put-reusing\0{dest.name}".encode()).hexdigest()[:32]
    temp = temp_path_for(dest, tag)
    return temp, temp.with_name(temp.name.removesuffix(".incomplete") + ".jsonl.incomplete")


def assemble(
    what: str,
    src_path: Path,
    source: Path,
    dest: Path,
    reuse: Reuse,
    identity: Identity,
    *,
    expected_hashes: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    before_commit: BeforeCommitFn | None = None,
) -> tuple[dict[str, str], int]:
    """Build ``dest`` from ``src_path`` and the reusable ranges of ``source`` (both paths on the
    remote); returns the new object's hashes and the bytes copied on the remote by this call.
    ``identity`` is the backend's identity of a stat result. The caller holds the key's lock."""
    if reuse.range_size <= 0:
        raise ValueError(f"{what}: range size must be positive, got {reuse.range_size}")
    temp, journal_path = temp_paths(dest)
    journal = Journal.at(journal_path, KIND)
    try:
        with open(src_path, "rb") as fin, _open_source(what, source, reuse, identity) as fsrc:
            st = os.fstat(fin.fileno())
            count = -(-st.st_size // reuse.range_size)
            reused = sorted(i for i in reuse.ranges if 0 <= i < count)
            header = {
                "temp": str(temp),
                "size": st.st_size,
                "file_mtime_ns": st.st_mtime_ns,
                "source": reuse.source_key,
                "source_identity": dict(reuse.source_identity),
                "range_size": reuse.range_size,
                "reused": reused,
                "sha256": (expected_hashes or {}).get("sha256"),
            }
            dest.parent.mkdir(parents=True, exist_ok=True)
            done = resume_download(journal, header, dest, lambda _: _fits(temp, st.st_size))
            copied = _fill(
                what, fin.fileno(), fsrc, temp, journal, reuse.range_size, st.st_size,
                frozenset(reused), frozenset(done), Progress(progress),
            )  # fmt: skip
        hashes = hash_file(temp, HASHES)
        wanted = dict(expected_hashes or {})
        if "sha256" not in wanted:
            wanted.update(hash_file(src_path, ("sha256",)))
        verify(
            what,
            expected_size=st.st_size,
            actual_size=temp.stat().st_size,
            expected=wanted,
            actual=hashes,
        )
        _check_identity(what, source.stat(), reuse, identity)
        if before_commit is not None:
            try:
                before_commit()
            except Exception:
                _discard(temp, journal)  # refused: nothing of it may ever be committed
                raise
        commit_temp(temp, dest)
    except (PreconditionFailed, IntegrityError):
        # Nothing of this attempt can be resumed into a right object: start afresh next time.
        _discard(temp, journal)
        raise
    journal.clear()
    return hashes, copied


@contextlib.contextmanager
def _open_source(what: str, source: Path, reuse: Reuse, identity: Identity) -> Iterator[int]:
    """The source object, open, checked to be the one the Reuse names (by its descriptor, so
    the bytes copied come from that very file even if the key is replaced meanwhile)."""
    try:
        f = open(source, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise PreconditionFailed(f"{what}: the source {source.name} is gone") from exc
    try:
        _check_identity(what, os.fstat(f.fileno()), reuse, identity)
        yield f.fileno()
    finally:
        f.close()


def _check_identity(what: str, st: os.stat_result, reuse: Reuse, identity: Identity) -> None:
    now = identity(st)
    common = now.keys() & reuse.source_identity.keys()
    # No key in common: nothing proves it is the same object, so it is not.
    if not common or any(now[k] != reuse.source_identity[k] for k in common):
        raise PreconditionFailed(
            f"{what}: the source changed since the ranges were compared "
            f"({dict(reuse.source_identity)} then, {dict(now)} now)"
        )


def _fits(temp: Path, size: int) -> bool:
    try:
        return temp.stat().st_size == size
    except FileNotFoundError:
        return False


def _fill(
    what: str,
    fin: int,
    fsrc: int,
    temp: Path,
    journal: Journal,
    range_size: int,
    size: int,
    reused: frozenset[int],
    done: frozenset[int],
    report: Progress,
) -> int:
    """Write every range not ``done`` into ``temp``: copied from ``fsrc`` when reusable, else
    from ``fin``; each recorded in the journal once written. Returns the bytes copied."""
    copier = _Copier()
    copied = 0
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o666)
    try:
        if not done:
            os.ftruncate(fd, size)  # a fresh temp (resume_download removed any other)
        for i in range(-(-size // range_size)):
            if i in done:
                continue
            start = i * range_size
            length = min(range_size, size - start)
            if i in reused:
                copier.copy(what, fsrc, fd, start, length)
                copied += length
                mark(journal, i)
            else:
                data = fileio.pread(fin, length, start)
                if len(data) != length:
                    raise IntegrityError(f"{what}: the local file shrank while being put")
                fileio.pwrite_all(fd, data, start)
                mark(journal, i)
                # After the record: a process killed in here has its bytes counted and kept.
                report(length)
    finally:
        os.close(fd)
    return copied


class _Copier:
    """Copy a byte range between two descriptors at the same offset, in the kernel while it
    will, through user space from its first refusal on."""

    def __init__(self) -> None:
        self.kernel = hasattr(os, "copy_file_range")

    def copy(self, what: str, src: int, dst: int, offset: int, length: int) -> None:
        end = offset + length
        while offset < end:
            n = self._kernel(src, dst, offset, end - offset) if self.kernel else 0
            if n == 0:
                # Also where the kernel copied nothing: some file systems answer 0 for a copy
                # they do not do, so the source's end is decided by a plain read.
                n = _copy_through_user_space(src, dst, offset, end - offset)
            if n == 0:
                raise IntegrityError(f"{what}: the source ends at {offset}, before a reused range")
            offset += n

    def _kernel(self, src: int, dst: int, offset: int, length: int) -> int:
        try:
            return os.copy_file_range(src, dst, length, offset, offset)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            self.kernel = False
            return 0


def _copy_through_user_space(src: int, dst: int, offset: int, length: int) -> int:
    data = fileio.pread(src, min(length, CHUNK), offset)
    fileio.pwrite_all(dst, data, offset)
    return len(data)


def _discard(temp: Path, journal: Journal) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    journal.clear()
