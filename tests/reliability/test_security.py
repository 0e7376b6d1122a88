"""Security: secrets stay out of every output and file, loose permissions on a
config holding a literal secret are warned about, journals holding bearer URLs are private, and
S3 server-side encryption is honoured and shown. Hostile remotes are in test_hostile_remotes.py.

Everything runs through the real CLI (in-process ``ms``) against the real test servers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers import open_provider
from providers.errors import TransientError
from tests.servers.drive import make_service_account
from tests.servers.seaweed import PART
from tests.support import SyncProject

SECRET_ENV = "MS_TEST_AWS_SECRET"


def s3_with_env_secret(seaweedfs, **extra) -> dict:
    """The session's SeaweedFS remote, credentials given in the config as an ${ENV} reference."""
    settings = seaweedfs.settings(**extra)
    settings.pop("profile")
    settings["aws_access_key_id"] = seaweedfs.access_key
    settings["aws_secret_access_key"] = "${" + SECRET_ENV + "}"
    return settings


def state_files(root: Path) -> dict[str, bytes]:
    state = root / "models" / ".model-safety"
    return {str(p): p.read_bytes() for p in state.rglob("*") if p.is_file()}


def pem_fragments(pem: bytes) -> list[str]:
    """Pieces of a private key's base64 body: any of them in an output means the key leaked."""
    body = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
    return [body[1], body[len(body) // 2], body[-2]]


def assert_absent(secrets: dict[str, str], **haystacks: str | bytes) -> None:
    for where, text in haystacks.items():
        data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for what, secret in secrets.items():
            assert secret not in data, f"{what} leaked into {where}"


def test_secrets_never_appear_in_output_logs_state_or_catalog(
    seaweedfs,
    drive_emulator,
    gdrive_emulator_settings,
    tmp_path,
    ms,
    monkeypatch,
):
    wrong_sa = tmp_path / "wrong-sa.json"
    wrong_pem = make_service_account(wrong_sa, drive_emulator.token_uri, "intruder@example.iam")
    good_pem_file = json.loads(Path(gdrive_emulator_settings["service_account_file"]).read_text())
    good_pem = good_pem_file["private_key"].encode()
    proj = SyncProject.create(
        tmp_path / "proj",
        s3_with_env_secret(seaweedfs),
        extra_remotes={"d": {**gdrive_emulator_settings, "service_account_file": str(wrong_sa)}},
    )
    proj.write_model(seed=3)
    wrong_secret = "wrong" + seaweedfs.secret_key[5:]
    secrets = {"the S3 secret": seaweedfs.secret_key, "the wrong S3 secret": wrong_secret}
    for i, frag in enumerate(pem_fragments(good_pem) + pem_fragments(wrong_pem)):
        secrets[f"a service-account key fragment {i}"] = frag
    outputs: dict[str, str] = {}

    # failing runs: a wrong S3 secret, a Drive key the server does not know
    monkeypatch.setenv(SECRET_ENV, wrong_secret)
    for remote in ("r", "d"):
        for extra in ((), ("--json",)):
            res = ms(proj.root, "-vv", "push", "--remote", remote, *extra)
            assert res.code == 1, res
            assert res.err.count("error:") == 1
            outputs[f"failed push {remote} {extra}: stdout"] = res.out
            outputs[f"failed push {remote} {extra}: stderr"] = res.err
    assert "check the credentials for remote 'r'" in outputs["failed push r (): stderr"]

    # succeeding runs with the right credentials
    monkeypatch.setenv(SECRET_ENV, seaweedfs.secret_key)
    proj.remote = {**proj.remote}
    proj.write_config(extra_remotes={"d": gdrive_emulator_settings})
    for args in (
        ("push", "--all", "--json"),
        ("push", "--all"),
        ("status", "--json"),
        ("status",),
        ("list", "--remote", "r", "--json"),
        ("verify", "--remote", "d", "--deep"),
        ("pull", "--remote", "d", "--json"),
    ):
        res = ms(proj.root, "-vv", *args)
        assert res.code == 0, (args, res)
        outputs[f"{args}: stdout"] = res.out
        outputs[f"{args}: stderr"] = res.err
    assert "uploaded dinesh_ai_model.pth to r" in outputs["('push', '--all', '--json'): stdout"]
    # every access token the emulator issued is a secret too
    with drive_emulator.state.lock:
        tokens = list(drive_emulator.state.tokens)
    assert tokens
    secrets |= {f"Drive access token {t[:12]}": t for t in tokens}

    catalogs = {
        "S3 catalog": seaweedfs.client()
        .get_object(
            Bucket=seaweedfs.bucket, Key=f"{proj.remote['prefix']}/.model-safety/catalog.json"
        )["Body"]
        .read(),
        "Drive catalog": next(
            f.data
            for f in drive_emulator.files_in(gdrive_emulator_settings["folder_id"])
            if f.title == ".model-safety/catalog.json"
        ),
    }
    assert_absent(secrets, **outputs, **catalogs, **state_files(proj.root))


def test_literal_secret_in_a_readable_config_is_warned_about(
    seaweedfs,
    tmp_path,
    ms,
    monkeypatch,
):
    settings = s3_with_env_secret(seaweedfs)
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.write_model(seed=1)
    monkeypatch.setenv(SECRET_ENV, seaweedfs.secret_key)

    # a ${ENV} reference is not a literal secret, whatever the file's mode
    proj.config.chmod(0o644)
    res = ms(proj.root, "status", "--local")
    assert res.code == 0 and "chmod" not in res.err

    # the secret written literally, the file readable by group and others
    proj.remote = {**settings, "aws_secret_access_key": seaweedfs.secret_key}
    proj.write_config()
    proj.config.chmod(0o644)
    res = ms(proj.root, "status", "--local")
    assert res.code == 0
    (line,) = [x for x in res.err.splitlines() if "literal secret" in x]
    assert str(proj.config) in line and f"chmod 600 {proj.config}" in line
    assert "aws_secret_access_key" in line
    assert seaweedfs.secret_key not in res.err + res.out

    # fixed as told: no warning any more, and the remote still works
    proj.config.chmod(0o600)
    res = ms(proj.root, "push")
    assert res.code == 0 and "chmod" not in res.err, res


def test_readable_credential_files_are_warned_about(
    gdrive_emulator_settings,
    tmp_path,
    ms,
):
    sa = tmp_path / "sa.json"
    sa.write_bytes(Path(gdrive_emulator_settings["service_account_file"]).read_bytes())
    proj = SyncProject.create(
        tmp_path / "proj", {**gdrive_emulator_settings, "service_account_file": str(sa)}
    )
    proj.write_model(seed=1)
    sa.chmod(0o640)
    res = ms(proj.root, "status", "--local")
    assert f"service_account_file {sa} holds credentials" in res.err
    assert f"chmod 600 {sa}" in res.err
    sa.chmod(0o600)
    assert "chmod" not in ms(proj.root, "status", "--local").err


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_journals_holding_upload_sessions_are_private(
    gdrive_emulator_settings, seaweedfs, fault_proxy, tmp_path, drive_emulator
):
    old = os.umask(0o022)  # a usual umask: files default to 0644
    try:
        # Drive: the upload finished under its temp title, the rename fails: the journal with the
        # session URL stays for the retry
        settings = {**gdrive_emulator_settings, "retry": {"attempts": 1}}
        drive = open_provider("d", settings, state_dir=tmp_path / "drive-state")
        src = tmp_path / "model.pth"
        src.write_bytes(os.urandom(3 * 256 * 1024))
        drive_emulator.inject("PATCH", r"^/drive/v2/files/", status=503)
        with pytest.raises(TransientError):
            drive.put("model.pth", src)
        journals = [p for p in (tmp_path / "drive-state").rglob("*") if p.is_file()]
        assert journals and all(private(p) for p in journals)
        assert any("upload_id" in p.read_text() for p in journals)

        # S3: a multipart upload whose completion fails keeps its journal; a download cut
        # mid-way keeps its range journal
        s3_settings = seaweedfs.settings(endpoint_url=fault_proxy.url, retry={"attempts": 1})
        s3 = open_provider("s", s3_settings, state_dir=tmp_path / "s3-state")
        big = tmp_path / "big.pth"
        big.write_bytes(os.urandom(2 * PART + 1))
        fault_proxy.add("503", method="POST", path_contains="uploadId=", limit=1)
        with pytest.raises(TransientError):
            s3.put("big.pth", big)
        s3.put("big.pth", big)  # resumes from the journal
        fault_proxy.add("cut", method="GET", limit=1)
        with pytest.raises(TransientError):
            s3.get("big.pth", tmp_path / "back" / "big.pth")
        journals = [p for p in (tmp_path / "s3-state").rglob("*") if p.is_file()]
        assert journals and all(private(p) for p in journals)
    finally:
        os.umask(old)


def test_sse_is_sent_on_put_multipart_and_copy_and_shown_in_status(seaweedfs, tmp_path, ms):
    # SeaweedFS stores SSE-S3 objects encrypted and reports it on HEAD, as AWS does
    settings, client = seaweedfs.settings(sse="AES256"), seaweedfs.client()
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.write_model(seed=1)
    (proj.models / "tokenizer.json").write_bytes(b"{}" + b" " * (PART + 10))  # multipart
    assert ms(proj.root, "backup", "--kind", "version").code == 0  # same bytes: a copy
    res = ms(proj.root, "push")
    assert res.code == 0, res
    # the version is put (single part), its tokenizer sent multipart, the current files copied
    assert "copied" in res.out and "uploaded dinesh_ai_model_v" in res.out
    listed = client.list_objects_v2(Bucket=settings["bucket"], Prefix=settings["prefix"])
    keys = [o["Key"] for o in listed["Contents"]]
    assert len(keys) >= 5
    for key in keys:
        head = client.head_object(Bucket=settings["bucket"], Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
    res = ms(proj.root, "status")
    assert "encryption: AES256" in res.out
    doc = json.loads(ms(proj.root, "status", "--json").out)
    assert doc["remotes"][0]["encryption"] == "AES256"


def test_redaction_masks_secrets_in_printed_lines_and_logs(capsys):
    """The net under the tests above: a secret that reaches a message anyway (an SDK error
    quoting a session URI, a token, a key) is masked in every line the CLI prints or logs."""
    import logging

    from agent import secrets
    from agent.cli.app import App

    app = App(None, verbose=2)
    secrets.register(["s3cr3t-from-config-xyz"])
    session = "http://h/upload/drive/v2/files?uploadType=resumable&upload_id=AbC123sessionXYZ"
    pem = (
        "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----"
    )
    app.warn(f"put failed: {session}")
    app.out_json({"detail": f"Bearer ya29.a0AfH6SMBx-token and s3cr3t-from-config-xyz {pem}"})
    logging.getLogger("providers.retry").warning("retrying %s", session)
    logging.getLogger("agent.remote.push").debug("aws_secret_access_key = s3cr3t-from-config-xyz")
    secrets.forget(["s3cr3t-from-config-xyz"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for secret in ("AbC123sessionXYZ", "ya29.a0AfH6SMBx", "s3cr3t-from-config-xyz", "MIIEvQ"):
        assert secret not in text
    assert text.count("upload_id=***") == 2 and "Bearer ***" in text
    assert "retrying" in text  # the line itself is kept, only the secret is masked


def test_oauth_token_file_stays_private_and_its_tokens_never_print(
    drive_emulator, gdrive_emulator_settings, tmp_path, ms
):
    """An OAuth token file (refresh token + client secret): the expired access token is
    refreshed and written back by oauth2client; the file stays 0600 and no token is printed."""
    refresh, client_secret = "1//rt-" + os.urandom(12).hex(), "cs-" + os.urandom(12).hex()
    drive_emulator.add_refresh_token(refresh)
    token_file = tmp_path / "token.json"
    token_file.write_text(
        json.dumps(
            {
                "_module": "oauth2client.client",
                "_class": "OAuth2Credentials",
                "access_token": "ya29.expired-" + os.urandom(8).hex(),
                "client_id": "123.apps.googleusercontent.com",
                "client_secret": client_secret,
                "refresh_token": refresh,
                "token_expiry": "2000-01-01T00:00:00Z",
                "token_uri": drive_emulator.token_uri,
                "user_agent": None,
                "invalid": False,
            }
        )
    )
    token_file.chmod(0o600)
    settings = {k: v for k, v in gdrive_emulator_settings.items() if k != "service_account_file"}
    proj = SyncProject.create(tmp_path / "proj", {**settings, "oauth_token_file": str(token_file)})
    proj.write_model(seed=5)
    outputs = []
    for args in (("-vv", "push", "--json"), ("-vv", "status", "--json"), ("-vv", "pull")):
        res = ms(proj.root, *args)
        assert res.code == 0, (args, res)
        outputs += [res.out, res.err]
    stored = json.loads(token_file.read_text())
    assert not stored["access_token"].startswith("ya29.expired-"), "the refresh was not saved"
    assert private(token_file)
    secrets = {
        "refresh token": refresh,
        "client secret": client_secret,
        "access token": stored["access_token"],
    }
    assert_absent(secrets, **{f"output {i}": text for i, text in enumerate(outputs)})
    assert_absent(secrets, **state_files(proj.root))


secret_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="*"),
    min_size=6,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(secret_text, st.text(max_size=30), st.text(max_size=30))
def test_a_registered_secret_never_survives_redaction(secret, before, after):
    from agent import secrets

    secrets.register([secret])
    try:
        masked = secrets.redact(f"{before}{secret}{after}")
        assert secret not in masked
        assert secrets.redact(masked) == masked  # masking is stable: nothing new to find
    finally:
        secrets.forget([secret])  # a random string must not mask later tests' output
