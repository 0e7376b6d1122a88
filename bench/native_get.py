"""Benchmark: the ranged-GET data path of a pull, botocore against native HTTP clients.

    .venv/bin/python bench/native_get.py [--sizes 400,2000] [--reps 3] [--settle 1]
                                         [--modes ours,ours-sha256,ours-nohash,obstore,...]
                                         [--paired ROUNDS] [--base DIR]

One run starts SeaweedFS on loopback, uploads one object of random bytes per size (with its
sha256 as metadata, as a push does) and downloads it with each mode, each a child process
measured with wait4 (wall time, user+sys CPU, peak RSS), the order rotated from one repetition to
the next, median of --reps. Every download is compared byte for byte with the source.

Modes:
- ``ours``: the provider's ``get`` as ``pull`` runs it: given the range hashes recorded at push
  (computed here from the source, untimed), each fetching thread checks its ranges as they
  arrive (RangedDownload: botocore GETs, BLAKE3 per range, writes past the page cache where the
  file system allows, fsync, rename).
- ``ours-sha256``: the same ``get`` without range hashes (an object pushed by another tool): the
  bytes go through the page cache and a sha256 follows the finished prefix.
- ``ours-nohash``: ``ours-sha256`` with the hashing and the hash check taken out.
- ``base``: with ``--base DIR``, ``ours`` run from the checkout in DIR (its ``providers``
  package), alternating with this one's: an A/B of a change in one run.
- ``obstore``: the same RangedDownload with each GET made by obstore (Rust: reqwest, tokio)
  instead of botocore; everything else (pwrite, hashing, journal, verify) unchanged.
- ``obstore-nohash``: that without the hashing.
- ``crt``: awscrt's S3 client (the CRT that s3transfer can use) fetching the whole object into a
  file by itself (its own parts and connections); no sha256: the native client's ceiling. Needs
  ``pip install awscrt``, kept out of the ``bench`` extra: installed, it is imported by botocore
  at every start-up, which would slow the other benchmarks' commands.

``--paired N`` adds, per size, the transfer alone (start-up excluded): one process alternating
``ours`` and ``obstore`` gets of the same object, N each, CPU from getrusage (obstore's runtime
threads included). The results and the decision: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _s3env import ROOT, hash_file, run_child, seaweedfs, settle, write_aws_profiles

MODES = ("ours", "ours-sha256", "ours-nohash", "obstore", "obstore-nohash", "crt", "base")
CONNECTIONS = 10  # the provider's default max_request_concurrency
PART = 8 * 1024 * 1024


def make_object(path: Path, size_mb: int) -> str:
    """A file of ``size_mb`` MB of random bytes; returns its sha256."""
    h = hashlib.sha256()
    block = os.urandom(16 * 1024 * 1024)
    with open(path, "wb") as f:
        for i in range(-(-size_mb * 10**6 // len(block))):
            # Vary every block cheaply, so nothing along the path can deduplicate.
            chunk = i.to_bytes(8, "little") + block[8:]
            chunk = chunk[: size_mb * 10**6 - f.tell()]
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


# --- children ----------------------------------------------------------------------------------


def _remote(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "type": "s3", "bucket": args.bucket, "prefix": "nb", "endpoint_url": args.endpoint,
        "region": "us-east-1", "profile": args.profile,
    }  # fmt: skip


def _no_hashing() -> None:
    """Take the sha256 and its check out of RangedDownload (this benchmark only)."""
    import providers.s3.download as dl

    class NoHash:
        def __init__(self, names: Any) -> None:
            pass

        def update(self, data: Any) -> None:
            pass

        def hexdigests(self) -> dict[str, str]:
            return {}

    dl.MultiHasher = NoHash  # type: ignore[assignment, misc]
    dl.verify = lambda *a, **kw: None  # type: ignore[assignment]


def _obstore_fetch(args: argparse.Namespace) -> Any:
    """A RangedDownload._fetch that makes its GET with obstore instead of botocore."""
    import boto3
    import obstore
    from obstore.store import S3Store

    import providers.s3.download as dl
    from providers.errors import TransientError

    creds = boto3.session.Session(profile_name=args.profile).get_credentials()
    frozen = creds.get_frozen_credentials()
    store = S3Store(
        args.bucket,
        endpoint=args.endpoint,
        region="us-east-1",
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True, "pool_max_idle_per_host": str(CONNECTIONS + 2)},
    )

    def fetch(self: Any, stretch: list[int], progress: Any, on_done: Any) -> None:
        if self._failed:
            return
        partial = self.partial
        start, end = stretch[0] * partial.range_size, self._end(stretch[-1])
        try:
            result = obstore.get(
                store, self.key, options={"range": (start, end), "if_match": partial.etag}
            )
            offset, pending = start, iter(stretch)
            index = next(pending)
            for chunk in result.stream(min_chunk_size=dl.READ):
                os.pwrite(self._fd, chunk, offset)
                offset += len(chunk)
                progress(len(chunk))
                while index is not None and offset >= self._end(index):
                    if on_done is not None:
                        on_done(index)
                    with self._cond:
                        partial.done.add(index)
                        self._cond.notify_all()
                    index = next(pending, None)
            if offset != end:
                raise TransientError(f"short read at {offset} of range {start}")
        except BaseException as exc:
            with self._cond:
                self._failed.append(exc)
                self._cond.notify_all()

    return fetch


def _crt(args: argparse.Namespace) -> None:
    import urllib.parse

    import boto3
    from awscrt.auth import AwsCredentialsProvider
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
    from awscrt.s3 import S3Client, S3RequestTlsMode, S3RequestType

    frozen = boto3.session.Session(profile_name=args.profile).get_credentials()
    frozen = frozen.get_frozen_credentials()
    elg = EventLoopGroup()
    bootstrap = ClientBootstrap(elg, DefaultHostResolver(elg))
    client = S3Client(
        bootstrap=bootstrap,
        region="us-east-1",
        tls_mode=S3RequestTlsMode.DISABLED,
        credential_provider=AwsCredentialsProvider.new_static(
            frozen.access_key, frozen.secret_key, frozen.token
        ),
        part_size=PART,
        max_active_connections_override=CONNECTIONS,
    )
    netloc = urllib.parse.urlsplit(args.endpoint).netloc
    request = HttpRequest("GET", f"/{args.bucket}/nb/{args.key}", HttpHeaders([("host", netloc)]))
    temp = Path(args.dest).with_name(Path(args.dest).name + ".part")
    made = client.make_request(
        type=S3RequestType.GET_OBJECT, request=request, recv_filepath=str(temp)
    )
    made.finished_future.result()
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, args.dest)


def child(args: argparse.Namespace) -> None:
    if args.child == "crt":
        _crt(args)
        return
    sys.path.insert(0, args.code or str(ROOT))
    if args.child.endswith("-nohash"):
        _no_hashing()
    import providers.s3.download as dl
    from providers import open_provider

    if args.child == "paired":
        _paired(args)
        return
    if args.child.startswith("obstore"):
        dl.RangedDownload._fetch = _obstore_fetch(args)  # type: ignore[method-assign]

    state = Path(args.dest).with_name("state")
    provider = open_provider("s3", _remote(args), state_dir=state)
    if args.child in ("ours", "base"):
        from providers.ranges import RangeHashes

        ranges = RangeHashes.from_json(json.loads(Path(args.ranges).read_text()))
        expected = {"sha256": args.sha}
        provider.get(args.key, Path(args.dest), expected_hashes=expected, expected_ranges=ranges)
    else:
        provider.get(args.key, Path(args.dest))


def _paired(args: argparse.Namespace) -> None:
    """The transfer alone (no start-up): ``get`` through botocore and through obstore in one
    process, alternating, ``--rounds`` each; one JSON line per get (wall s, CPU s of the whole
    process, obstore's runtime threads included)."""
    import resource
    import time

    import providers.s3.download as dl
    from providers import open_provider

    fetches = {"ours": dl.RangedDownload._fetch, "obstore": _obstore_fetch(args)}
    dest = Path(args.dest)
    provider = open_provider("s3", _remote(args), state_dir=dest.with_name("state"))
    provider.stat(args.key)  # the connection and the credentials are ready before the first
    for n in range(args.rounds):
        for name in list(fetches)[n % 2 :] + list(fetches)[: n % 2]:
            dl.RangedDownload._fetch = fetches[name]  # type: ignore[method-assign]
            settle(args.settle)
            usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            provider.get(args.key, dest)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
            if hash_file(dest) != args.sha:
                raise SystemExit(f"{name}: the download differs from the source")
            dest.unlink()
            print(json.dumps([name, wall, cpu]), flush=True)


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="400,2000", help="object sizes in MB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--paired", type=int, default=0, metavar="ROUNDS",
        help="also time the transfer alone (no start-up), botocore vs obstore in one process",
    )  # fmt: skip
    parser.add_argument(
        "--base", metavar="DIR", help="adds mode 'base': 'ours' run from the checkout in DIR"
    )
    parser.add_argument("--child", choices=(*MODES, "paired"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    for name in ("key", "dest", "endpoint", "bucket", "profile", "sha", "ranges", "code"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    modes = [m for m in args.modes.split(",") if m and m != "base"]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if args.base:
        if not (Path(args.base) / "providers").is_dir():
            parser.error(f"--base {args.base}: no providers package there")
        modes.insert(1, "base")
    sizes = [int(s) for s in args.sizes.split(",")]
    medians: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="native-get-") as tmp_name:
        tmp = Path(tmp_name)
        env = write_aws_profiles(tmp)
        os.environ.update(env)
        with seaweedfs(tmp / "seaweedfs") as server:
            for size_mb in sizes:
                medians[size_mb] = bench_size(server, tmp, size_mb, modes, args)
    print(f"\nMedians of {args.reps} runs, each a fresh process (start-up included).")
    print("\n| size | mode | wall s | CPU s | peak RSS MB | wall vs ours | CPU vs ours |")
    print("|---|---|---|---|---|---|---|")
    for size_mb, med in medians.items():
        base = med.get("ours")
        for m in modes:
            wall, cpu, rss = med[m]
            ratio = f"{wall / base[0]:.2f}x | {cpu / base[1]:.2f}x" if base else "- | -"
            print(f"| {size_mb} MB | {m} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {ratio} |")
    if len(sizes) >= 2:
        # The fixed cost (start-up, HEAD, fsync) cancels out between two sizes: what is left is
        # the data path's CPU per byte.
        lo, hi = min(sizes), max(sizes)
        gb = (hi - lo) / 1000
        print(f"\nCPU per GB of the data path ({lo} -> {hi} MB, start-up cancelled out):")
        for m in modes:
            print(f"- {m}: {(medians[hi][m][1] - medians[lo][m][1]) / gb:.2f} CPU-s/GB")


def paired(
    server: Any, tmp: Path, size_mb: int, key: str, sha: str, args: argparse.Namespace
) -> None:
    """One child alternating botocore and obstore gets of the same object: the transfer's own
    cost, start-up excluded, compared in one process."""
    work = tmp / "work"
    work.mkdir()
    argv = [sys.executable, __file__, "--child", "paired", "--key", key,
            "--dest", str(work / "out.bin"), "--endpoint", server.endpoint_url,
            "--bucket", server.bucket, "--profile", server.profile, "--sha", sha,
            "--rounds", str(args.paired), "--settle", str(args.settle)]  # fmt: skip
    run = run_child(argv, cwd=tmp, timeout=3600)
    shutil.rmtree(work)
    if run.code != 0:
        raise SystemExit(f"paired failed ({run.code}):\n{run.err[-3000:]}")
    got: dict[str, list[tuple[float, float]]] = {}
    for line in run.out.splitlines():
        name, wall, cpu = json.loads(line)
        got.setdefault(name, []).append((wall, cpu))
    med = {n: [statistics.median(x[i] for x in v) for i in range(2)] for n, v in got.items()}
    base = med["ours"]
    print(f"\nTransfer alone, {size_mb} MB, one process, median of {args.paired} each:")
    for name, (wall, cpu) in med.items():
        print(f"- {name}: {wall:.2f} s wall ({wall / base[0]:.2f}x), {cpu:.2f} s CPU "
              f"({cpu / base[1]:.2f}x), {cpu / size_mb * 1000:.2f} CPU-s/GB")  # fmt: skip


def bench_size(
    server: Any, tmp: Path, size_mb: int, modes: list[str], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Median wall seconds, CPU seconds and peak RSS (MB) of each mode for one object size."""
    src = tmp / f"src-{size_mb}"
    sha = make_object(src, size_mb)
    key = f"obj-{size_mb}"
    sys.path.insert(0, str(ROOT))
    from providers.ranges import ranges_of_file

    ranges = tmp / f"ranges-{size_mb}.json"  # what a push records with the object
    ranges.write_text(json.dumps(ranges_of_file(src).to_json()))
    client = server.client()
    from boto3.s3.transfer import TransferConfig

    client.upload_file(
        str(src), server.bucket, f"nb/{key}", ExtraArgs={"Metadata": {"sha256": sha}},
        Config=TransferConfig(multipart_chunksize=PART),
    )  # fmt: skip
    samples: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    for rep in range(args.reps):
        order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
        for mode in order:
            work = tmp / "work"
            work.mkdir()
            dest = work / "out.bin"
            settle(args.settle)
            argv = [sys.executable, __file__, "--child", mode, "--key", key, "--dest", str(dest),
                    "--endpoint", server.endpoint_url, "--bucket", server.bucket,
                    "--profile", server.profile, "--sha", sha, "--ranges", str(ranges)]  # fmt: skip
            if mode == "base":
                argv += ["--code", str(Path(args.base).resolve())]
            run = run_child(argv, cwd=tmp)
            if run.code != 0:
                raise SystemExit(f"{mode} failed ({run.code}):\n{run.err[-3000:]}")
            if not filecmp.cmp(src, dest, shallow=False):
                raise SystemExit(f"{mode}: the download of {size_mb} MB differs from the source")
            samples[mode].append((run.seconds, run.cpu_s, run.maxrss_mb))
            print(f"{size_mb} MB rep {rep} {mode}: {run.seconds:.2f} s wall, "
                  f"{run.cpu_s:.2f} s CPU, {run.maxrss_mb:.0f} MB RSS", flush=True)  # fmt: skip
            shutil.rmtree(work)
    if args.paired:
        paired(server, tmp, size_mb, key, sha, args)
    src.unlink()
    client.delete_object(Bucket=server.bucket, Key=f"nb/{key}")
    return {m: [statistics.median(s[i] for s in samples[m]) for i in range(3)] for m in modes}


if __name__ == "__main__":
    main()
