"""Portability: each fallback for a POSIX-only API runs for real, in a child process started the
way the portability lane starts every child (tests/portability/sitecustomize.py takes the APIs
away before anything is imported); names that are no file on Windows are refused; the remote-name
check holds under Windows path rules. ``pytest --portability`` runs the whole suite that way;
these tests run in both lanes."""

from __future__ import annotations

import hashlib
import json
import ntpath
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.rules.naming import is_plain_name
from providers.transfer import check_key
from tests.support import (
    MODEL_FILE,
    NO_POSIX_ENV,
    SyncProject,
    cli_env,
    in_portability_lane,
    run_subprocess,
    write_layered_checkpoint,
)

GONE = (
    "pwrite",
    "pread",
    "preadv",
    "posix_fallocate",
    "fdatasync",
    "O_DIRECTORY",
    "O_DIRECT",
    "copy_file_range",
)


def no_posix_env() -> dict[str, str]:
    """The environment of a child with the POSIX-only APIs taken away (as in the lane)."""
    env = cli_env(**{NO_POSIX_ENV: "1"})
    site = str(Path(__file__).resolve().parents[1] / "portability")
    if site not in env["PYTHONPATH"].split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join([site, env["PYTHONPATH"]])
    return env


def run_python(
    code: str, cwd: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_lane_takes_the_posix_apis_away_in_children(tmp_path):
    probe = f"""
        import os, sys
        gone = [n for n in {GONE!r} if not hasattr(os, n)]
        try:
            import fcntl
            gone_fcntl = False
        except ImportError:
            gone_fcntl = True
        import filelock
        import agent.cli.main  # the CLI starts without fcntl
        print(len(gone), gone_fcntl, filelock.FileLock.__name__)
    """
    proc = run_python(probe, tmp_path, no_posix_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(len(GONE)), "True", "SoftFileLock"]
    if in_portability_lane():  # and in the lane, this very process and its plain children too
        assert not hasattr(os, "pwrite") and not hasattr(os, "O_DIRECTORY")
        with pytest.raises(ImportError):
            import fcntl  # noqa: F401
        plain = run_python(probe, tmp_path, cli_env())
        assert plain.stdout.split() == proc.stdout.split(), plain.stderr


POSITIONAL = """
    import hashlib, os, sys, threading
    from pathlib import Path
    from providers import fileio

    assert not hasattr(os, "pwrite") and not hasattr(os, "preadv")
    assert not hasattr(os, "posix_fallocate") and not hasattr(os, "O_DIRECTORY")
    path = Path(sys.argv[1])
    size, part = 4 * 1024 * 1024 + 123, 256 * 1024
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o644)
    fileio.reserve(fd, size)  # truncate, without posix_fallocate
    assert os.fstat(fd).st_size == size
    starts = list(range(0, size, part))

    # many workers, each range written by whichever thread takes it, out of order
    out = fileio.Positional(path, fd)
    def worker(mine):
        for start in mine:
            out.write_all(data[start : start + part], start)
    threads = [threading.Thread(target=worker, args=(starts[i::4][::-1],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handles = len(out._handles)
    out.close()
    fileio.pwrite_all(fd, b"HEAD", 0)  # the single-worker helper, seek + write
    fileio.datasync(fd)  # fsync, without fdatasync
    back = bytearray(size)
    assert fileio.preadinto(fd, back, 0) == size
    assert fileio.pread(fd, 10, size - 4) == data[-4:]  # short at the end of the file
    os.close(fd)
    fileio.fsync_dir(path.parent)  # skipped without O_DIRECTORY
    expected = b"HEAD" + data[4:]
    assert bytes(back) == expected
    print(handles, hashlib.sha256(expected).hexdigest())
"""


def test_positional_io_fallback_writes_every_range_from_many_workers(tmp_path):
    proc = run_python(POSITIONAL, tmp_path, no_posix_env(), str(tmp_path / "out.bin"))
    assert proc.returncode == 0, proc.stderr
    handles, digest = proc.stdout.split()
    assert int(handles) == 4  # one file handle per worker
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).hexdigest() == digest


DIRECT = """
    import hashlib, os, sys, threading
    from pathlib import Path
    from providers import fileio

    path = Path(sys.argv[1])
    size, part = 4 * 1024 * 1024 + 123, 256 * 1024  # the last part ends off the block size
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o644)
    os.ftruncate(fd, size)
    out = fileio.DirectWriter(path, fd)
    direct = out.direct
    def worker(mine):
        buf = memoryview(fileio.aligned_buffer(part))  # one reused buffer per worker
        for start in mine:
            n = len(data[start : start + part])
            buf[:n] = data[start : start + n]
            out.write_all(buf[:n], start)
    starts = list(range(0, size, part))
    threads = [threading.Thread(target=worker, args=(starts[i::4][::-1],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.write_all(b"HEAD", 0)  # not from an aligned buffer: written through the page cache
    out.close()
    fileio.datasync(fd)
    os.close(fd)
    print(direct, hashlib.sha256(b"HEAD" + data[4:]).hexdigest())
"""


@pytest.mark.parametrize("posix", [True, False], ids=["o_direct", "without"])
def test_direct_writes_from_many_workers_land_every_byte(tmp_path, posix):
    """A download's writer bypasses the page cache where O_DIRECT exists (Linux, a file system
    that takes it), and writes the same bytes through it where not: aligned pieces, the file's
    unaligned last bytes and a piece from an unaligned buffer, from several threads at once."""
    wanted = posix and not in_portability_lane()  # the lane takes O_DIRECT from every child
    env = cli_env() if wanted else no_posix_env()
    proc = run_python(DIRECT, tmp_path, env, str(tmp_path / "out.bin"))
    assert proc.returncode == 0, proc.stderr
    direct, digest = proc.stdout.split()
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).hexdigest() == digest
    if not wanted:
        assert direct == "False"  # no O_DIRECT: the buffered writes did it all
    elif sys.platform == "linux":
        assert direct == "True"  # tmp_path's file system takes O_DIRECT here


def test_backup_push_pull_round_trip_without_the_posix_apis(tmp_path, local_settings):
    """The CLI end to end with every fallback in use: the copy into a version (reserve by
    truncate, seek+write, fsync), the lock (filelock without flock), the local remote's
    transfer and its delta (positional reads and writes), the pull into an empty machine."""
    env = no_posix_env()
    src = SyncProject.create(tmp_path / "src", local_settings)
    src.write_model(seed=1)
    write_layered_checkpoint(src.models / MODEL_FILE, layers=4, layer_bytes=8 << 20)
    for args in (["backup", "--kind", "version"], ["push"]):
        proc = run_subprocess(args, src.root, env=env)
        assert proc.returncode == 0, proc.stderr
    # a fine-tune of the last layer: the next version's push copies the unchanged ranges on
    # the remote (copy_file_range is gone too: through positional reads and writes)
    write_layered_checkpoint(src.models / MODEL_FILE, layers=4, layer_bytes=8 << 20, tuned=1)
    proc = run_subprocess(["backup", "--kind", "version"], src.root, env=env)
    assert proc.returncode == 0, proc.stderr
    pushed = run_subprocess(["push", "--json"], src.root, env=env)
    assert pushed.returncode == 0, pushed.stderr
    (report,) = json.loads(pushed.stdout)
    delta = [t for t in report["transfers"] if t["action"] == "upload"]
    assert len(delta) == 1 and delta[0]["bytes_copied"] >= 16 << 20, report["transfers"]
    fresh = SyncProject.create(tmp_path / "fresh", local_settings)
    proc = run_subprocess(["pull", "--version", "all"], fresh.root, env=env)
    assert proc.returncode == 0, proc.stderr
    versions = sorted(p.name for p in src.models.glob("dinesh_ai_model_v*.pth"))
    assert versions and versions == sorted(p.name for p in fresh.models.glob("dinesh_ai_model_v*"))
    for name in (MODEL_FILE, *versions):
        assert (fresh.models / name).read_bytes() == (src.models / name).read_bytes()
    verify = run_subprocess(["verify", "--remote", "r"], fresh.root, env=env)
    assert verify.returncode == 0, verify.stderr


HOLDER = """
import sys
from pathlib import Path
from agent.local.lock import Lock
lock = Lock(Path(sys.argv[1]), "test holder").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("platform_lock", [True, False], ids=["os-lock", "without-fcntl"])
def test_second_process_names_the_lock_holder_and_takes_over_after_kill(project, platform_lock):
    """Two real processes: filelock's OS lock (flock here, msvcrt on Windows) and, without
    fcntl, its fallback lock; either way the holder is named (exit 4) and a holder killed
    with SIGKILL leaves a lock the next run takes over with a warning."""
    env = cli_env() if platform_lock else no_posix_env()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project.models / ".model-safety")],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        blocked = run_subprocess(["backup"], project.root, env=env)
        assert blocked.returncode == 4, blocked.stderr
        assert f"pid {holder.pid}" in blocked.stderr and "`test holder`" in blocked.stderr
        assert not (project.models / "dinesh_ai_model_backup.pth").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    after = run_subprocess(["backup"], project.root, env=env)
    assert after.returncode == 0, after.stderr
    assert "stale lock" in after.stderr and str(holder.pid) in after.stderr
    assert (project.models / "dinesh_ai_model_backup.pth").exists()
    again = run_subprocess(["backup"], project.root, env=env)
    assert again.returncode == 0 and "stale lock" not in again.stderr  # released cleanly


WINDOWS_TROUBLE = [
    "CON",
    "con.pth",
    "nul.tar.gz",
    "Aux",
    "COM1.pth",
    "lpt9",
    "model.pth.",
    "model.pth ",
    "model.pth:stream",
    'a"b.pth',
    "what?.pth",
    "tab\tname.pth",
]


@pytest.mark.parametrize("name", WINDOWS_TROUBLE)
def test_names_that_are_no_file_on_windows_are_refused(name):
    assert not is_plain_name(name)
    with pytest.raises(ValueError, match="invalid key"):
        check_key(f"models/{name}")


@pytest.mark.parametrize("name", ["console.pth", "com10.pth", "nul_model.pth", "model.v2.pth"])
def test_names_that_only_look_reserved_are_fine(name):
    assert is_plain_name(name)
    assert check_key(f"models/{name}") == f"models/{name}"


def test_config_refuses_a_device_name_and_files_differing_only_in_case(project, cli):
    text = project.config.read_text()
    project.config.write_text(text.replace("file: dinesh_ai_model.pth", "file: CON.pth"))
    res = cli("status", "--local")
    assert res.code == 1
    assert "'CON.pth'" in res.err and "reserved device name on Windows" in res.err
    project.config.write_text(text.replace("[tokenizer.json]", "[tokenizer.json, Tokenizer.JSON]"))
    res = cli("status", "--local")
    assert res.code == 1
    assert "'Tokenizer.JSON'" in res.err and "one file where case is ignored" in res.err


@given(st.text(alphabet=st.sampled_from(list('aZ0._- :/\\?*"<>|\t\x00CONULPTM1ñ')), max_size=12))
def test_a_plain_name_stays_inside_models_dir_under_posix_and_windows_path_rules(name):
    """What the remote-name check accepts is one file inside models_dir whichever path rules
    apply: no drive (``c:x``), no root, no separator, no parent, nothing Windows would rewrite."""
    if not is_plain_name(name):
        return
    for rules in (posixpath, ntpath):
        joined = rules.join("models", name)
        assert rules.split(joined) == ("models", name), (rules.__name__, name)
        assert rules.normpath(joined) == joined, (rules.__name__, name)
    assert ntpath.splitdrive(name) == ("", name)


def test_stop_handlers_install_only_where_python_lets_them():
    from agent.signals import handled, stop_signals

    here = stop_signals()
    assert signal.SIGINT in here and signal.SIGTERM in here  # Linux: Ctrl-C and a stop request
    seen: list[list[int]] = []

    def other_thread() -> None:  # Python refuses handlers outside the main thread
        with handled(signal.SIG_IGN) as installed:
            seen.append(installed)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [[]]
    before = signal.getsignal(signal.SIGTERM)
    with handled(signal.SIG_IGN) as installed:
        assert set(installed) == set(here)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == before


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def refused_target(tmp_path) -> Iterator[Path]:
    """A file a rename over is refused with PermissionError until ``chattr -i``: what Windows
    does while a virus scanner has the file open (root and ext4, xfs or btrfs)."""
    target = tmp_path / "model.pth"
    target.write_bytes(b"old")
    if not _chattr("+i", target):
        pytest.skip("needs chattr +i (root; ext4, xfs or btrfs) for a rename refused for a while")
    try:
        yield target
    finally:
        _chattr("-i", target)


def test_a_rename_refused_for_a_moment_is_retried_until_it_goes_through(
    refused_target, monkeypatch
):
    from providers import fileio

    monkeypatch.setattr(fileio, "REPLACE_ATTEMPTS", 12)  # ~100 s in all: room on a busy machine
    new = refused_target.with_name("new")
    new.write_bytes(b"new")
    release = threading.Timer(0.3, _chattr, ("-i", refused_target))  # the scanner lets go
    release.start()
    try:
        fileio.replace(new, refused_target)
    finally:
        release.join()
    assert refused_target.read_bytes() == b"new" and not new.exists()


def test_a_rename_refused_for_good_is_reported_and_changes_nothing(refused_target, monkeypatch):
    from providers import fileio

    monkeypatch.setattr(fileio, "REPLACE_ATTEMPTS", 2)
    new = refused_target.with_name("new")
    new.write_bytes(b"new")
    with pytest.raises(PermissionError):
        fileio.replace(new, refused_target)
    assert refused_target.read_bytes() == b"old" and new.read_bytes() == b"new"
