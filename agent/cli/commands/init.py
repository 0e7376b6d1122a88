"""``model-safety init``: write a commented starter config."""

from __future__ import annotations

import click

from agent.cli.commands import pass_app
from agent.errors import AgentError

STARTER = """\
# model-safety configuration. Only the MODEL_SAFETY block is read; other keys are left alone.
# Reference: README.md (Config reference). ${ENV_VAR} references in strings are expanded.
MODEL_SAFETY:
  models_dir: models                 # relative to this file
  models:
    - name: my_model
      file: my_model.pth             # the current checkpoint, inside models_dir (or a directory:
      #                                a save_pretrained folder, a DCP checkpoint)
      companions: []                 # e.g. [tokenizer.json]; captured and restored with it
  max_backups: 4                     # dated versions kept locally (never fewer than 2)
  # retention:                       # disk full? keep by age (restic's keep-within) instead:
  #   keep_within_days: 30           # versions dated up to 30 days before the newest one, at
  #                                    most max_backups of them; older ones go (floor: 2);
  #                                    also the policy of remotes without a retention: of their own
  backup_interval_days: 7            # `model-safety run` makes a dated version this often
  auto_backup_before_train: true
  min_free_space_gb: 1               # refuse a copy that would leave less free space than this
  # compression: zstd                # store dated versions as <version>.pth.zst (`zstd -d` restores
  #                                    one by hand); the current file and the backup slot stay plain
  # compress_after_days: 14          # `run` compresses a version once it is this old (0: at once)
  # validation:
  #   min_score: 0.7
  #   scorer: mypkg.eval:score       # function(model_path) -> float
  #   command: python eval.py {model}
  # remotes:                        # where `push` mirrors versions; credentials never go here
  #   nas:
  #     type: local
  #     path: /mnt/nas/model-backups
  #     auto_push: true              # `run` pushes here and applies its retention
  #     compression: zstd            # store versions here as .zst (none, the default: plain)
  #     retention: {keep_last: 8, keep_monthly: 6}
  #   s3:
  #     type: s3
  #     bucket: my-bucket
  #     prefix: backups/my_model
  #     region: eu-west-1            # credentials: the AWS chain (env, profile, role)
  #   drive:
  #     type: gdrive
  #     folder_id: 1AbC...
  #     service_account_file: ~/.config/model-safety/sa.json
"""


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@pass_app
def init(app, force: bool) -> None:  # type: ignore[no-untyped-def]
    """Write a commented starter config.yaml (or the --config path)."""
    from agent.local.hashing import atomic_write_bytes

    path = app.config_path
    if path.exists() and not force:
        raise AgentError(f"{path} already exists; use --force to overwrite it")
    if path.is_dir():
        raise AgentError(f"{path} is a directory")
    atomic_write_bytes(path.resolve(), STARTER.encode("utf-8"))
    app.out(f"wrote {path}; edit the models list, then run `model-safety backup`")


COMMANDS = [init]
