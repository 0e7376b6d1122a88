"""``validate_model``: the ordered checks a checkpoint must pass before it may replace a good model.
Used by ``model-safety validate``, the guard and the Python API.

1. loads_safely — the confined checker (agent.checks): torch's ``weights_only`` loader or the
   safetensors library in a child process with hard limits; a file that needs arbitrary pickled
   objects is refused and nothing in it runs. The same verdict, recorded by sha256, is what
   push, backup and guard ask, so the order of commands never changes what gets pushed.
2. structure — tensor names, shapes and dtypes against the previous good version. Removed or
   reshaped (or re-typed) tensors fail by default (``on_structure_change: warn`` makes them a
   warning); added tensors only warn: a new head is usually intended, a lost layer never is.
3. finite — no NaN or Inf in any floating tensor, as torch reads it (byte order, views),
   chunk by chunk, in the same confined child.
4. quality — ``validation.scorer`` or ``validation.command`` (agent.validation.quality),
   gated by ``min_score`` and ``max_regression``. Skipped when none is configured, and when an
   earlier check failed: a scorer usually loads the model with full pickle, which an unsafe
   file must never reach, and the score of a NaN model means nothing.

Previous good version: the newest intact copy (version or backup) of the model, other than the
content being validated, whose recorded validation passed; when none passed, the newest one not
recorded as failed. ``max_regression`` is absolute, in score points: fail when
``score < previous_score - max_regression``. When the previous good version has no recorded
score, it is scored now (once; the score is recorded).

Results are recorded by sha256 (agent.checks.records). A problem with the model is a failed
check; a problem running the checks (file missing, scorer raising) raises CannotValidate.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.checks.records import load_records, save_record
from agent.checks.runner import Verdict
from agent.checks.verdicts import content_sha256, verdict_for
from agent.local.stored import plain_path
from agent.rules.codec import codec_of
from agent.rules.naming import identify
from agent.validation.quality import CannotValidate, measure_score

if TYPE_CHECKING:
    from agent.local.catalog import Entry
    from agent.local.store import Store

__all__ = ["CannotValidate", "Check", "ValidationResult", "validate_model"]

log = logging.getLogger(__name__)

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
MAX_LISTED = 5  # names listed in one problem line; the count says how many more


def listed(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


@dataclass
class Check:
    name: str
    status: str  # "pass" | "fail" | "warn" | "skip"
    detail: str


@dataclass
class ValidationResult:
    model: str | None
    path: str
    sha256: str | None
    checks: list[Check] = field(default_factory=list)
    score: float | None = None
    reference: str | None = None  # the previous good version compared against

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "path": self.path,
            "sha256": self.sha256,
            "passed": self.passed,
            "score": self.score,
            "reference": self.reference,
            "checks": [asdict(c) for c in self.checks],
        }

    def summary(self) -> str:
        who = self.model or Path(self.path).name
        score = f", score {self.score:g}" if self.score is not None else ""
        if self.passed:
            warned = [c.name for c in self.checks if c.status == WARN]
            note = f" (warnings: {', '.join(warned)})" if warned else ""
            return f"{who}: passed{score}{note}"
        failed = next(c for c in self.checks if c.status == FAIL)
        return f"{who}: FAILED {failed.name}: {failed.detail}{score}"


@dataclass(frozen=True)
class _Reference:
    name: str
    path: Path
    sha256: str | None


def validate_model(
    store: Store,
    model: str | None = None,
    path: Path | None = None,
    *,
    reference: str | None = None,
    record: bool = True,
) -> ValidationResult:
    """Run the checks on ``path`` (default: ``model``'s current file). ``reference``: a catalog
    copy name or a path to compare with instead of the previous good version. ``record``: save
    the result under the file's sha256."""
    target, model_name = _target(store, model, path)
    if codec_of(target.name) is not None and target.is_file():
        # a compressed copy is judged by its model bytes, decompressed to a temp
        with plain_path(store, target) as plain:
            result = validate_model(store, model_name, plain, reference=reference, record=record)
        result.path = str(target)
        return result
    if not (target.is_dir() and any(target.iterdir())) and (
        not target.is_file() or target.stat().st_size == 0
    ):
        raise CannotValidate(
            f"{target} is missing, empty or not a file; nothing to validate"
            + ("; restore it with `model-safety restore`" if model_name else "")
        )
    sha = _content_sha(store, target)
    ref = _reference(store, target, model_name, sha, reference)
    result = ValidationResult(model_name, str(target), sha, reference=ref.name if ref else None)
    verdict = _verdict(store, target, sha)
    if not verdict.ok and verdict.failed_check != "finite":
        result.checks.append(Check("loads_safely", FAIL, verdict.reason or "failed"))
        for name in ("structure", "finite", "quality"):
            result.checks.append(Check(name, SKIP, "not run: the file did not load safely"))
    else:
        loaded = f"{verdict.format or 'loaded'}, {len(verdict.tensors)} tensors"
        loaded += "".join(f"; {line}" for line in verdict.checked)
        result.checks.append(Check("loads_safely", PASS, loaded))
        result.checks.append(_structure(store, verdict, ref))
        result.checks.append(_finite(verdict))
        result.checks.append(_quality(store, target, ref, result))
    if record:
        _record(store, result)
    return result


def _content_sha(store: Store, path: Path) -> str:
    if path.is_dir():
        from agent.checks.directory import tree_sha256

        return tree_sha256(store, path)
    return content_sha256(store, path)


def _verdict(store: Store, path: Path, sha: str) -> Verdict:
    """The checker's verdict on a file, or on every file of a directory model and what ties
    them together (agent.checks.directory)."""
    if path.is_dir():
        from agent.checks.directory import as_verdict

        return as_verdict(store, path)
    return verdict_for(store, path, sha, safetensors=path.suffix == ".safetensors")


def _target(store: Store, model: str | None, path: Path | None) -> tuple[Path, str | None]:
    if path is None:
        m = store.config.model(model)
        return store.path(m.file), m.name
    path = Path(path)
    if model is not None:
        return path, store.config.model(model).name
    try:
        inside = path.resolve().parent == store.models_dir.resolve()
    except OSError:
        inside = False
    ident = identify(path.name, store.config.models) if inside else None
    return path, ident.model if ident and ident.companion is None else None


def previous_good(
    store: Store, model: str, exclude_sha256: str | None, *, older_than: Entry | None = None
) -> Entry | None:
    """The newest intact copy of ``model`` (not ``exclude_sha256``; older than ``older_than``
    when validating a copy) that passed validation; when none is recorded as passed, the newest
    one not recorded as failed."""
    records = load_records(store.state_dir)
    copies = [
        e
        for e in store.catalog.of_model(model)
        if e.kind in ("version", "backup")
        and e.sha256 != exclude_sha256
        and (older_than is None or e.sort_key < older_than.sort_key)
    ]
    for wanted in (lambda r: r.get("passed") is True, lambda r: r.get("passed") is not False):
        for entry in copies:
            if wanted(records.get(entry.sha256, {})) and store.state_of(entry).state == "ok":
                return entry
    return None


def _reference(
    store: Store, target: Path, model: str | None, sha: str, explicit: str | None
) -> _Reference | None:
    if explicit is not None:
        entry = store.catalog.get(explicit)
        if entry is not None:
            return _Reference(entry.name, store.path(entry.name), entry.sha256)
        path = Path(explicit)
        if not path.exists():
            raise CannotValidate(f"reference {explicit} is neither a catalog copy nor a file")
        return _Reference(str(path), path, None)
    if model is None:
        return None
    inside = target.resolve().parent == store.models_dir.resolve()
    copy = store.catalog.get(target.name) if inside else None
    entry = previous_good(store, model, sha, older_than=copy)
    return _Reference(entry.name, store.path(entry.name), entry.sha256) if entry else None


def _signature(verdict: Verdict) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {n: (str(dt_), tuple(shape)) for n, (dt_, shape) in verdict.tensors.items()}


def _structure(store: Store, verdict: Verdict, ref: _Reference | None) -> Check:
    if ref is None:
        return Check("structure", SKIP, f"{len(verdict.tensors)} tensors; no previous version")
    other = _verdict(store, ref.path, ref.sha256 or _content_sha(store, ref.path))
    if not other.ok:
        return Check("structure", WARN, f"cannot read {ref.name} to compare: {other.reason}")
    before, now = _signature(other), _signature(verdict)
    removed = sorted(set(before) - set(now))
    added = sorted(set(now) - set(before))
    changed = [
        f"{n} {before[n][0]}{list(before[n][1])} -> {now[n][0]}{list(now[n][1])}"
        for n in sorted(set(before) & set(now))
        if before[n] != now[n]
    ]
    parts = []
    if removed:
        parts.append(f"removed {listed(removed)}")
    if changed:
        parts.append(f"reshaped {listed(changed)}")
    if added:
        parts.append(f"added {listed(added)}")
    if not parts:
        return Check("structure", PASS, f"same {len(now)} tensors as {ref.name}")
    detail = f"vs {ref.name}: " + "; ".join(parts)
    if removed or changed:
        strict = store.config.validation.on_structure_change == "fail"
        return Check("structure", FAIL if strict else WARN, detail)
    return Check("structure", WARN, detail)


def _finite(verdict: Verdict) -> Check:
    if not verdict.ok:
        return Check("finite", FAIL, verdict.reason or "failed")
    if verdict.format == "dcp":
        return Check("finite", SKIP, "not checked: no safe reader for the values in .distcp files")
    floating = sum(1 for dtype, _ in verdict.tensors.values() if _is_floating(str(dtype)))
    return Check("finite", PASS, f"{floating} floating tensors, all values finite")


def _is_floating(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat", "complex", "half", "double"))


def _quality(store: Store, target: Path, ref: _Reference | None, result: ValidationResult) -> Check:
    v = store.config.validation
    if not (v.scorer or v.command):
        return Check("quality", SKIP, "no validation.scorer or validation.command configured")
    if any(c.status == FAIL for c in result.checks):
        return Check("quality", SKIP, "not run: an earlier check failed")
    score = measure_score(store.config, target)
    assert score is not None
    result.score = score
    problems, notes = [], [f"score {score:g}"]
    if v.min_score is not None:
        notes.append(f"min_score {v.min_score:g}")
        if score < v.min_score:
            problems.append(f"score {score:g} is below min_score {v.min_score:g}")
    if v.max_regression is not None:
        ref_score = _reference_score(store, ref)
        if ref_score is None:
            notes.append("no previous score to compare with")
        else:
            notes.append(f"previous good {ref_score:g} ({ref.name if ref else '?'})")
            if score < ref_score - v.max_regression:
                problems.append(
                    f"score {score:g} is more than max_regression {v.max_regression:g} below "
                    f"{ref.name if ref else 'the previous good version'}'s {ref_score:g}"
                )
    if problems:
        return Check("quality", FAIL, "; ".join(problems))
    return Check("quality", PASS, ", ".join(notes))


def _reference_score(store: Store, ref: _Reference | None) -> float | None:
    if ref is None:
        return None
    if ref.sha256 is not None:
        recorded = load_records(store.state_dir).get(ref.sha256, {}).get("score")
        if isinstance(recorded, int | float):
            return float(recorded)
    with plain_path(store, ref.path, ref.sha256) as plain:
        score = measure_score(store.config, plain)
    if score is not None and ref.sha256 is not None:
        _save(store, ref.sha256, {"score": score, "scored": _now()})
    return score


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _record(store: Store, result: ValidationResult) -> None:
    if result.sha256 is None:
        return
    fields = {
        "passed": result.passed,
        "score": result.score,
        "checks": [asdict(c) for c in result.checks],
        "when": _now(),
        "reference": result.reference,
        "model": result.model,
    }
    _save(store, result.sha256, fields)


def _save(store: Store, sha: str, fields: dict[str, Any]) -> None:
    try:
        save_record(store.state_dir, sha, fields)
    except OSError as exc:  # a read-only models dir: the result is still returned
        log.warning("cannot record the validation result in %s: %s", store.state_dir, exc)
