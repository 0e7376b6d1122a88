"""config.yaml -> frozen, typed config. Every mistake is a one-line ConfigError that names the key
(and, for a typo, the nearest valid key) or the path. Only the ``MODEL_SAFETY:`` block is ours
(other top-level keys, a training config say, are left alone); ``${ENV_VAR}`` in any string value
is expanded (a missing variable is an error); relative paths are resolved against the config
file's directory."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config_retention import global_rules, policy, with_global_default
from agent.errors import ConfigError
from agent.rules import codec
from agent.rules.naming import is_plain_name, parse_name
from agent.rules.retention import RetentionPolicy
from agent.secrets import expand_env
from providers.config import remote_problem
from providers.names import portable_name_problem, same_name_key

BLOCK = "MODEL_SAFETY"
DEFAULT_CONFIG = "config.yaml"
ENV_CONFIG = "MODEL_SAFETY_CONFIG"

TOP_KEYS = (
    "models_dir",
    "models",
    "max_backups",
    "backup_interval_days",
    "auto_backup_before_train",
    "min_free_space_gb",
    "compression",
    "compress_after_days",
    "validation",
    "retention",
    "remotes",
)
MODEL_KEYS = ("name", "file", "companions")
VALIDATION_KEYS = (
    "min_score",
    "scorer",
    "command",
    "test_prompts",
    "max_regression",
    "on_structure_change",
)
FILE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    file: str  # a plain file (or directory) name inside models_dir
    companions: tuple[str, ...] = ()
    # ``file`` names a directory (a Hugging Face save_pretrained folder, a DCP checkpoint):
    # written ``file: llama-ft/``, or found so on disk (the directory or one of its copies)
    directory: bool = False


@dataclass(frozen=True)
class ValidationConfig:
    min_score: float | None = None
    scorer: str | None = None  # "module:function", called with the model path, returns a float
    command: str | None = None  # shell command; "{model}" is replaced; prints the score last
    # passed to the scorer as its second argument: a list of prompts, or a file's resolved path
    test_prompts: tuple[str, ...] | str | None = None
    max_regression: float | None = None  # score points below the previous good version's score
    on_structure_change: str = "fail"  # removed/reshaped tensors: fail or warn (added: warn)


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    settings: Mapping[str, Any]  # the whole entry, `type` included; keys checked, values not
    retention: RetentionPolicy
    auto_push: bool = False
    compression: str = "none"  # what this remote stores: none | zstd (agent.rules.codec)


@dataclass(frozen=True)
class Config:
    models_dir: Path
    models: tuple[ModelConfig, ...]
    max_backups: int = 4
    backup_interval_days: int = 7
    auto_backup_before_train: bool = True
    min_free_space_gb: float = 1.0
    compression: str = "none"  # this machine's dated versions (agent.local.age)
    compress_after_days: int = 0
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    remotes: tuple[RemoteConfig, ...] = ()
    path: Path | None = None  # the file this was loaded from
    retention: tuple[tuple[str, int], ...] = ()  # global rules: agent.config_retention

    @property
    def state_dir(self) -> Path:
        return self.models_dir / ".model-safety"

    def model(self, name: str | None) -> ModelConfig:
        """The model called ``name``; with exactly one model configured, None selects it."""
        if name is None:
            if len(self.models) == 1:
                return self.models[0]
            names = ", ".join(m.name for m in self.models)
            raise ConfigError(f"several models are configured ({names}); name one of them")
        for model in self.models:
            if model.name == name:
                return model
        raise ConfigError(f"unknown model {name!r}{_hint(name, [m.name for m in self.models])}")

    def remote(self, name: str) -> RemoteConfig:
        for remote in self.remotes:
            if remote.name == name:
                return remote
        raise ConfigError(f"unknown remote {name!r}{_hint(name, [r.name for r in self.remotes])}")


def _hint(key: str, valid: Any) -> str:
    near = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r}{_hint(key, valid)}")


def _typed(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data[key]
    # bool is an int in Python; a `true` where a number belongs is still a mistake.
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {_type_name(kind)}, got {value!r}")
    return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds if k is not type(None)) + (
        " or null" if type(None) in kinds else ""
    )


def _file_name(value: Any, where: str) -> str:
    problem = portable_name_problem(value) if isinstance(value, str) else None
    if problem:
        raise ConfigError(f"{where}: {value!r} is no file name on every platform: {problem}")
    if not isinstance(value, str) or not is_plain_name(value):
        raise ConfigError(f"{where}: expected a plain file name inside models_dir, got {value!r}")
    return value


def _parse_model(raw: Any, index: int) -> ModelConfig:
    where = f"{BLOCK}.models[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name, file, companions")
    _check_keys(raw, MODEL_KEYS, where)
    if "file" not in raw:
        raise ConfigError(f"{where}: missing required key 'file'")
    raw_file = raw["file"]
    directory = isinstance(raw_file, str) and raw_file.endswith("/") and raw_file != "/"
    file = _file_name(raw_file[:-1] if directory else raw_file, f"{where}.file")
    name = raw.get("name", file if directory else file.rsplit(".", 1)[0])
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: expected a non-empty string, got {name!r}")
    companions = raw.get("companions") or []
    if not isinstance(companions, list):
        raise ConfigError(f"{where}.companions: expected a list of file names")
    comps = tuple(_file_name(c, f"{where}.companions[{i}]") for i, c in enumerate(companions))
    return ModelConfig(name=name, file=file, companions=comps, directory=directory)


def _with_kind(model: ModelConfig, models_dir: Path) -> ModelConfig:
    """A model whose file is a directory on disk, or (deleted) has directory copies, is a
    directory model. A name with a single-file checkpoint suffix (``model.pth``) found as a
    directory is a mistake to report, unless the config says ``file: model.pth/``."""
    if model.directory or model.file.lower().endswith(FILE_SUFFIXES):
        return model
    path = models_dir / model.file
    if path.is_dir():
        return replace(model, directory=True)
    if path.exists():
        return model
    try:
        siblings = [p for p in models_dir.iterdir() if p.name.startswith(model.file)]
    except OSError:
        return model
    for p in siblings:
        parsed = parse_name(p.name, model.file, directory=True)
        if parsed is not None and parsed.kind in ("backup", "version") and p.is_dir():
            return replace(model, directory=True)
    return model


def _parse_validation(raw: Any, base_dir: Path) -> ValidationConfig:
    where = f"{BLOCK}.validation"
    if raw is None:
        return ValidationConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    _check_keys(raw, VALIDATION_KEYS, where)
    min_score = raw.get("min_score")
    if min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, int | float)
    ):
        raise ConfigError(f"{where}.min_score: expected a number, got {min_score!r}")
    scorer = raw.get("scorer")
    if scorer is not None and (not isinstance(scorer, str) or ":" not in scorer):
        raise ConfigError(f"{where}.scorer: expected 'module:function', got {scorer!r}")
    command = raw.get("command")
    if command is not None and not isinstance(command, str):
        raise ConfigError(f"{where}.command: expected a string, got {command!r}")
    max_regression = raw.get("max_regression")
    if max_regression is not None and (
        isinstance(max_regression, bool)
        or not isinstance(max_regression, int | float)
        or max_regression < 0
    ):
        raise ConfigError(f"{where}.max_regression: expected a number >= 0, got {max_regression!r}")
    on_change = raw.get("on_structure_change", "fail")
    if on_change not in ("warn", "fail"):
        raise ConfigError(f"{where}.on_structure_change: expected warn or fail, got {on_change!r}")
    return ValidationConfig(
        min_score=float(min_score) if min_score is not None else None,
        scorer=scorer,
        command=command,
        test_prompts=_test_prompts(raw.get("test_prompts"), base_dir, where),
        max_regression=float(max_regression) if max_regression is not None else None,
        on_structure_change=on_change,
    )


def _test_prompts(value: Any, base_dir: Path, where: str) -> tuple[str, ...] | str | None:
    if value is None:
        return None
    if isinstance(value, str) and value:
        return str((base_dir / Path(value).expanduser()).resolve())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(
        f"{where}.test_prompts: expected a list of strings or a file path, got {value!r}"
    )


# Backend keys that name local files or directories: resolved like models_dir.
REMOTE_PATH_KEYS = ("path", "service_account_file", "oauth_token_file")


def _parse_remote(name: Any, raw: Any, max_backups: int, base_dir: Path) -> RemoteConfig:
    where = f"{BLOCK}.remotes.{name}"
    if not isinstance(name, str) or not is_plain_name(name):
        raise ConfigError(f"{BLOCK}.remotes: remote name must be a plain string, got {name!r}")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with at least 'type'")
    # unknown keys and types fail here, for every command, not only when the remote is opened
    problem = remote_problem(raw)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    auto_push = raw.get("auto_push", False)
    if not isinstance(auto_push, bool):
        raise ConfigError(f"{where}.auto_push: expected true or false, got {auto_push!r}")
    retry = raw.get("retry")
    if retry is not None and not isinstance(retry, Mapping):
        raise ConfigError(f"{where}.retry: expected a mapping")
    retention = policy(raw.get("retention"), max_backups, where)
    settings = dict(raw)
    for key in REMOTE_PATH_KEYS:
        if isinstance(settings.get(key), str) and settings[key]:
            settings[key] = str((base_dir / Path(settings[key]).expanduser()).resolve())
    return RemoteConfig(name, settings, retention, auto_push, _compression(raw, where))


def _compression(block: Mapping[str, Any], where: str) -> str:
    try:
        return codec.setting(block, where, top=where == BLOCK)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_config(doc: Any, base_dir: Path, path: Path | None = None) -> Config:
    """Build a Config from the parsed YAML document of a config file."""
    if not isinstance(doc, Mapping) or BLOCK not in doc:
        keys = list(doc) if isinstance(doc, Mapping) else []
        hint = next((f" (found {k!r})" for k in keys if _hint(k, [BLOCK])), "")
        raise ConfigError(f"missing the {BLOCK}: block{hint}")
    block = doc[BLOCK]
    if not isinstance(block, Mapping):
        raise ConfigError(f"{BLOCK}: expected a mapping of settings")
    block = expand_env(block, BLOCK)
    _check_keys(block, TOP_KEYS, BLOCK)
    models_raw = block.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError(f"{BLOCK}.models: required, a list with at least one model")
    models = tuple(_parse_model(m, i) for i, m in enumerate(models_raw))
    _check_unique(models)

    values: dict[str, Any] = {}
    for key, kind in (
        ("max_backups", int),
        ("backup_interval_days", int),
        ("auto_backup_before_train", bool),
        ("min_free_space_gb", (int, float)),
        ("compress_after_days", int),
    ):
        if key in block:
            values[key] = _typed(block, key, kind, BLOCK)
    values["compression"] = _compression(block, BLOCK)
    for key in ("max_backups", "backup_interval_days", "min_free_space_gb", "compress_after_days"):
        if key in values and values[key] < 0:
            raise ConfigError(f"{BLOCK}.{key}: must be >= 0, got {values[key]!r}")
    if "min_free_space_gb" in values:
        values["min_free_space_gb"] = float(values["min_free_space_gb"])

    models_dir_raw = block.get("models_dir", "models")
    if not isinstance(models_dir_raw, str) or not models_dir_raw:
        raise ConfigError(f"{BLOCK}.models_dir: expected a path, got {models_dir_raw!r}")
    models_dir = (base_dir / Path(models_dir_raw).expanduser()).resolve()
    models = tuple(_with_kind(m, models_dir) for m in models)

    max_backups = values.get("max_backups", 4)
    remotes_raw = block.get("remotes") or {}
    if not isinstance(remotes_raw, Mapping):
        raise ConfigError(f"{BLOCK}.remotes: expected a mapping of name -> settings")
    rules = global_rules(block.get("retention"), max_backups)
    remotes = tuple(_parse_remote(n, r, max_backups, base_dir) for n, r in remotes_raw.items())
    remotes = with_global_default(remotes, remotes_raw, rules, max_backups)
    return Config(
        models_dir=models_dir,
        models=models,
        validation=_parse_validation(block.get("validation"), base_dir),
        remotes=remotes,
        path=path,
        retention=rules,
        **values,
    )


def _check_unique(models: tuple[ModelConfig, ...]) -> None:
    # Files compare ignoring case: on Windows and macOS (by default) `Model.pth` and `model.pth`
    # are one file, and a config must mean the same thing on every machine it is copied to.
    seen: dict[str, tuple[str, str]] = {}
    for model in models:
        if model.name in (owner for owner, _ in seen.values()):
            raise ConfigError(f"{BLOCK}.models: model name {model.name!r} appears twice")
        for file in (model.file, *model.companions):
            key = same_name_key(file)
            if key in seen:
                owner, other = seen[key]
                also = "" if other == file else f" (as {other!r}: one file where case is ignored)"
                raise ConfigError(
                    f"{BLOCK}.models: file {file!r} is listed for both {owner!r} "
                    f"and {model.name!r}{also}"
                )
            seen[key] = (model.name, file)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $MODEL_SAFETY_CONFIG, else ./config.yaml."""
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    import yaml

    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {file} not found; create one with `model-safety init` "
            f"or point --config / ${ENV_CONFIG} at it"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config path {file} is a directory, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    return parse_config(doc, file.resolve().parent, path=file.resolve())
