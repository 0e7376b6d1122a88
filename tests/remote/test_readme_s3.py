"""The README's "Try it against a local S3 server" remote entry, parsed from the README and used
for a push to the test suite's moto server (the address swapped for the fixture's port)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support import MODEL_FILE, TOKENIZER, SyncProject

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_remote() -> dict:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Try it against a local S3 server", 1)[1].split("\n### ", 1)[0]
    (snippet,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return yaml.safe_load(snippet)["remotes"]["s3"]


def test_the_readme_moto_remote_takes_a_push(tmp_path, ms, monkeypatch, s3_moto_settings):
    import boto3

    remote = readme_remote()
    assert remote["endpoint_url"] == "http://127.0.0.1:5000"  # what `moto_server -p 5000` serves
    assert remote["aws_access_key_id"].startswith("${")  # a reference, never a literal secret
    endpoint = s3_moto_settings["endpoint_url"]
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket=remote["bucket"])
    monkeypatch.setenv("S3_KEY", "test")
    monkeypatch.setenv("S3_SECRET", "test")

    proj = SyncProject.create(tmp_path / "proj", {**remote, "endpoint_url": endpoint})
    proj.write_model(seed=3)
    res = ms(proj.root, "push", "--remote", "r")
    assert res.code == 0, res.out + res.err
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=remote["bucket"])["Contents"]}
    assert {MODEL_FILE, TOKENIZER} <= keys
