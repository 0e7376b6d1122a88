"""config.yaml -> frozen typed config; every mistake is one clear line, exit code 1."""

from __future__ import annotations

import dataclasses

import pytest

from agent.config import load_config
from agent.config_retention import local_policy
from agent.errors import ConfigError
from agent.rules.retention import RetentionPolicy

FULL = """\
training: {epochs: 3}       # someone else's section: left alone
MODEL_SAFETY:
  models_dir: models
  models:
    - name: dinesh_ai_model
      file: dinesh_ai_model.pth
      companions: [tokenizer.json]
  max_backups: 5
  backup_interval_days: 3
  auto_backup_before_train: false
  min_free_space_gb: 0.5
  validation:
    min_score: 0.7
    scorer: mypkg.eval:score
  remotes:
    nas: {type: local, path: "${NAS_ROOT}/backups"}
    s3:
      type: s3
      bucket: b
      auto_push: true
      retry: {attempts: 3}
      retention: {keep_last: 8, keep_monthly: 6}
"""


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_full_config_loads_typed_and_frozen(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_ROOT", "/mnt/nas")
    cfg = load_config(write(tmp_path, FULL))
    assert cfg.models_dir == (tmp_path / "models").resolve()
    assert cfg.model(None).companions == ("tokenizer.json",)
    assert (cfg.max_backups, cfg.backup_interval_days, cfg.auto_backup_before_train) == (
        5,
        3,
        False,
    )
    assert cfg.min_free_space_gb == 0.5
    assert cfg.validation.min_score == 0.7
    nas, s3 = cfg.remotes
    assert nas.settings["path"] == "/mnt/nas/backups"
    assert nas.retention == RetentionPolicy(keep_last=5)  # default keep_last = max_backups
    assert not nas.auto_push
    assert s3.auto_push and s3.settings["type"] == "s3" and s3.settings["retry"] == {"attempts": 3}
    assert s3.retention == RetentionPolicy(keep_last=8, keep_monthly=6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_backups = 1


def test_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "MODEL_SAFETY:\n  models: [{file: m.pth}]\n"))
    assert cfg.model(None).name == "m"
    assert (cfg.max_backups, cfg.backup_interval_days, cfg.min_free_space_gb) == (4, 7, 1.0)
    assert cfg.auto_backup_before_train is True
    assert cfg.remotes == ()


def test_global_retention_is_the_local_policy_and_the_default_for_remotes(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n  max_backups: 6\n"
            "  retention: {keep_within_days: 30, keep_monthly: 2}\n"
            "  remotes:\n    nas: {type: local, path: /p}\n"
            "    s3: {type: s3, bucket: b, retention: {keep_weekly: 8}}\n",
        )
    )
    within = RetentionPolicy(keep_last=0, keep_within_days=30, keep_monthly=2, within_cap=6)
    assert local_policy(cfg) == within
    nas, s3 = cfg.remotes
    assert nas.retention == within  # no retention of its own: the global one
    assert s3.retention == RetentionPolicy(keep_last=6, keep_weekly=8)  # its own, as a whole
    plain = load_config(write(tmp_path, "MODEL_SAFETY:\n  models: [{file: a.pth}]\n"))
    assert local_policy(plain) == RetentionPolicy(keep_last=4)


def test_models_dir_is_relative_to_the_config_file(tmp_path, monkeypatch):
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    path = write(sub, "MODEL_SAFETY:\n  models_dir: m\n  models: [{file: a.pth}]\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(path).models_dir == sub / "m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "MODEL_SAFETY:\n  max_backup: 3\n  models: [{file: a.pth}]\n",
            "did you mean 'max_backups'",
        ),
        ("MODEL_SAFETY:\n  max_backups: three\n  models: [{file: a.pth}]\n", "max_backups"),
        ("MODEL_SAFETY:\n  max_backups: true\n  models: [{file: a.pth}]\n", "max_backups"),
        ("MODEL_SAFETY:\n  models: [{file: a.pth, companion: [t]}]\n", "'companions'"),
        ("MODEL_SAFETY:\n  models: [{file: ../a.pth}]\n", "plain file name"),
        ("MODEL_SAFETY:\n  models: []\n", "models"),
        ("MODEL_SAFTY:\n  models: [{file: a.pth}]\n", "MODEL_SAFETY"),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n  remotes: {x: {path: /p}}\n",
            "remotes.x: 'type' is required",
        ),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n"
            "  remotes: {x: {type: s3, bucket: b, auto_push: 1}}\n",
            "auto_push",
        ),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n"
            "  remotes: {x: {type: s3, bucket: b, retention: {keep_lst: 1}}}\n",
            "keep_last",
        ),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n  retention: {keep_within_day: 30}\n",
            "MODEL_SAFETY.retention: unknown key 'keep_within_day' (did you mean "
            "'keep_within_days'?)",
        ),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n  retention: {keep_within_days: 30d}\n",
            "MODEL_SAFETY.retention.keep_within_days must be a whole number >= 0, got '30d'",
        ),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n  retention: {keep_within_days: -1}\n",
            "retention.keep_within_days must be a whole number >= 0",
        ),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n  retention: {keep_last: 3}\n",
            "MODEL_SAFETY.retention.keep_last: the local keep_last is max_backups; set that "
            "instead",
        ),
        ("MODEL_SAFETY:\n  models: [{file: a.pth}]\n  retention: 30\n", "retention: expected"),
        (
            "MODEL_SAFETY:\n  models: [{file: a.pth}]\n"
            "  remotes: {x: {type: local, path: /p, retention: {keep_within_days: 1.5}}}\n",
            "MODEL_SAFETY.remotes.x.retention.keep_within_days must be a whole number",
        ),
        ("MODEL_SAFETY:\n  models: [{file: a.pth}]\n  validation: {scorer: nocolon}\n", "scorer"),
        ("MODEL_SAFETY:\n  models: [{file: '${NOPE_NOT_SET}'}]\n", "NOPE_NOT_SET"),
        ("MODEL_SAFETY: [\n", "not valid YAML"),
        ("just a string", "MODEL_SAFETY"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_cli_reports_config_errors_without_traceback(cli, project):
    project.config.write_text("MODEL_SAFETY:\n  max_backup: 3\n  models: [{file: a.pth}]\n")
    result = cli("status")
    assert result.code == 1
    assert "did you mean 'max_backups'" in result.err
    assert "Traceback" not in result.err
    garbage = cli("--config", str(project.root / "nope.yaml"), "list")
    assert garbage.code == 1 and "model-safety init" in garbage.err


def test_env_var_selects_the_config(cli, project, monkeypatch):
    other = project.root / "other.yaml"
    other.write_text("MODEL_SAFETY:\n  models: [{name: second, file: s.pth}]\n")
    monkeypatch.setenv("MODEL_SAFETY_CONFIG", str(other))
    result = cli("list", "--json")
    assert result.code == 0 and '"model": "second"' in result.out
    # --config wins over the environment variable
    assert '"dinesh_ai_model"' in cli("--config", str(project.config), "list", "--json").out


def test_init_writes_a_starter_and_refuses_to_overwrite(cli, project):
    target = project.root / "new.yaml"
    assert cli("--config", str(target), "init").code == 0
    cfg = load_config(target)
    assert cfg.models[0].file == "my_model.pth"
    target.write_text("# mine\n")
    refused = cli("--config", str(target), "init")
    assert refused.code == 1 and "--force" in refused.err
    assert target.read_text() == "# mine\n"
    assert cli("--config", str(target), "init", "--force").code == 0
    assert "MODEL_SAFETY" in target.read_text()


def test_several_models_need_a_name(cli, project):
    project.config.write_text(
        "MODEL_SAFETY:\n  models: [{name: a, file: a.pth}, {name: b, file: b.pth}]\n"
    )
    result = cli("list")
    assert result.code == 1 and "name one of them" in result.err
    typo = cli("list", "aa")
    assert typo.code == 1 and "did you mean 'a'" in typo.err


# A remote entry for each type, with its required keys; the paths need not exist, since the
# config is checked before anything is opened.
REMOTES = {
    "local": "{type: local, path: /mnt/nas/model-backups}",
    "s3": "{type: s3, bucket: my-bucket}",
    "gdrive": "{type: gdrive, folder_id: abc, service_account_file: sa.json}",
}


def with_remote(project, entry: str) -> None:
    """The project's config with one remote ``r`` whose entry is ``entry`` (YAML flow style)."""
    text = project.config.read_text()
    project.config.write_text(text + f"  remotes:\n    r: {entry}\n")


@pytest.mark.parametrize(
    ("entry", "command", "expected"),
    [
        # a typo of auto_push must not silently turn backups off
        ("{type: local, path: /mnt/nas, autopush: true}", "run", "did you mean 'auto_push'?"),
        ("{type: s3, bucke: my-bucket}", "status", "unknown key 'bucke' (did you mean 'bucket'?)"),
        ("{type: s3, bucke: my-bucket}", "backup", "did you mean 'bucket'?"),
        ("{type: s4, bucket: my-bucket}", "status", "valid types: gdrive, local, s3"),
        ("{type: s4, bucket: my-bucket}", "backup", "unknown type 's4'"),
        ("{tpye: s3, bucket: b}", "list", "unknown key 'tpye' (did you mean 'type'?)"),
        ("{type: s3, region: eu-west-1}", "list", "missing required key 'bucket'"),
        ("{type: s3, bucket: b, retry: {attempt: 3}}", "list", "did you mean 'attempts'?"),
        ("{type: gdrive, folder_id: x, chunksize: 1}", "list", "did you mean 'chunk_size'?"),
    ],
)
def test_a_wrong_remote_key_fails_every_command(cli, project, entry, command, expected):
    with_remote(project, entry)
    result = cli(command)
    assert result.code == 1, result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "MODEL_SAFETY.remotes.r" in lines[0] and expected in lines[0]
    assert "Traceback" not in result.err


@pytest.mark.parametrize("kind", sorted(REMOTES))
@pytest.mark.parametrize(
    ("typo", "meant"),
    [("autopush: true", "auto_push"), ("retension: {}", "retention"), ("rerty: {}", "retry")],
)
def test_remote_typos_suggest_the_common_keys_for_every_type(cli, project, kind, typo, meant):
    with_remote(project, REMOTES[kind][:-1] + f", {typo}}}")
    result = cli("list")
    assert result.code == 1 and f"did you mean {meant!r}?" in result.err


@pytest.mark.parametrize("kind", sorted(REMOTES))
def test_valid_remotes_of_every_type_load(cli, project, kind):
    with_remote(project, REMOTES[kind][:-1] + ", auto_push: false, retry: {attempts: 2}}")
    assert cli("list").code == 0


def test_checking_remote_keys_loads_no_sdk(project):
    """The key lists are the backends' own, yet checking them never imports boto3 or pydrive2
    (`model-safety --help` and local commands stay fast)."""
    import subprocess
    import sys

    from tests.support import cli_env

    with_remote(project, REMOTES["s3"])
    project.config.write_text(project.config.read_text() + "    d: " + REMOTES["gdrive"] + "\n")
    code = (
        "import sys; from agent.config import load_config; load_config('config.yaml'); "
        "print(sorted(m for m in ('boto3', 'botocore', 'pydrive2') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.root,
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
