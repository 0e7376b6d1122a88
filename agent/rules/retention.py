"""Which versions to keep, with a reason for each decision. Pure: used for both the local models
dir and every remote, so both sides obey the same rules.

Policy semantics (the calendar rules follow restic's ``forget``):

- ``keep_last: N``   the N newest good versions.
- ``keep_within_days: N`` every good version dated at most N days before the newest good version
  (restic's ``--keep-within``: measured from the newest version, not from today, so versions that
  stop coming, a model no longer trained or a broken job, never age out one by one). When a policy
  sets it without ``keep_last``, ``max_backups`` caps it instead of being a rule of its own:
  ``within_cap`` is the most versions it keeps, newest first (see ``from_mapping``).
- ``keep_daily: N``  for each of the N most recent calendar days that have a good version, the
  newest version of that day.
- ``keep_weekly: N`` the same per ISO week (Monday to Sunday).
- ``keep_monthly: N`` the same per calendar month.

A version kept by several rules lists every reason. On top of the policy, whatever it says:

- the newest good version is always kept;
- at least ``minimum`` (2) good versions are kept while that many exist;
- a pinned candidate (e.g. "not on any remote yet") is kept, with the pin as its reason;
- a version that is not good (checksum mismatch, or its file missing) is never counted and never
  deleted here: its bytes may still be needed, so it is left for ``repair`` or for inspection;
- a version dated after ``today`` (a copy from a machine with a wrong clock, or our own clock set
  back) is kept and not counted either: by date it would be "the newest" and push the really
  newest versions out of ``keep_last``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

POLICY_KEYS = ("keep_last", "keep_within_days", "keep_daily", "keep_weekly", "keep_monthly")


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_within_days: int = 0
    # the most versions keep_within_days keeps (newest first): max_backups, when the policy sets
    # keep_within_days without keep_last; None: no cap
    within_cap: int | None = None

    def __post_init__(self) -> None:
        for key in (*POLICY_KEYS, "within_cap"):
            value = getattr(self, key)
            if key == "within_cap" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention.{key} must be a whole number >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, default_keep_last: int) -> RetentionPolicy:
        """Build from a config mapping; raises ValueError naming an unknown key (and the nearest
        valid one) or a bad value. ``default_keep_last`` (max_backups) is the policy's
        ``keep_last`` when it names none; with ``keep_within_days`` and no ``keep_last`` it caps
        the age rule instead: "versions of the last N days, at most max_backups of them", so
        setting an age limit never keeps more than before, and versions older than it do go
        (as a keep rule, max_backups would keep the newest few however old they are)."""
        import difflib

        for key in data:
            if key not in POLICY_KEYS:
                near = difflib.get_close_matches(str(key), POLICY_KEYS, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(f"retention: unknown key {key!r}{hint}")
        values = {key: data[key] for key in POLICY_KEYS if key in data}
        if "keep_last" not in values and values.get("keep_within_days"):
            values["keep_last"] = 0
            values["within_cap"] = default_keep_last
        values.setdefault("keep_last", default_keep_last)
        return cls(**values)

    def describe(self) -> str:
        parts = [f"{key} {getattr(self, key)}" for key in POLICY_KEYS if getattr(self, key)]
        if self.keep_within_days and self.within_cap is not None:
            parts[parts.index(f"keep_within_days {self.keep_within_days}")] += (
                f" (at most {self.within_cap}: max_backups)"
            )
        return ", ".join(parts) or "keep_last 0"


@dataclass(frozen=True)
class Candidate:
    name: str
    date: dt.date
    seq: int = 0
    good: bool = True
    pin: str | None = None  # a reason this one must be kept whatever the policy says


@dataclass(frozen=True)
class Decision:
    name: str
    keep: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keep": self.keep, "reasons": list(self.reasons)}


def _calendar_rule(
    good: Sequence[Candidate],
    count: int,
    bucket: Callable[[dt.date], Hashable],
    label: Callable[[dt.date], str],
    reasons: dict[str, list[str]],
) -> None:
    """Keep the newest candidate of each of the ``count`` most recent buckets (good is newest
    first, so the first one seen in a bucket is its newest)."""
    seen: set[Hashable] = set()
    for cand in good:
        if len(seen) >= count:
            break
        key = bucket(cand.date)
        if key not in seen:
            seen.add(key)
            reasons[cand.name].append(label(cand.date))


def _within_rule(
    good: Sequence[Candidate], policy: RetentionPolicy, reasons: dict[str, list[str]]
) -> dict[str, str]:
    """Keep every good version dated at most ``keep_within_days`` days before the newest good
    one (up to ``within_cap`` of them); returns why each other good version is not kept by it."""
    days, cap = policy.keep_within_days, policy.within_cap
    if not days or not good:
        return {}
    newest = good[0].date
    missed: dict[str, str] = {}
    kept = 0
    for cand in good:
        age = (newest - cand.date).days
        if age > days:
            missed[cand.name] = (
                f"dated {age} days before the newest ({newest.isoformat()}): "
                f"older than keep_within_days {days}"
            )
        elif cap is not None and kept >= cap:
            missed[cand.name] = (
                f"within {days} days of the newest ({newest.isoformat()}) but not among the "
                f"{cap} newest of those (max_backups {cap} caps keep_within_days)"
            )
        else:
            kept += 1
            count = f" {kept}/{cap}" if cap is not None else ""
            reasons[cand.name].append(
                f"within {days} days of the newest ({newest.isoformat()}){count}"
            )
    return missed


def plan_retention(
    candidates: Sequence[Candidate],
    policy: RetentionPolicy,
    *,
    minimum: int = 2,
    today: dt.date | None = None,
) -> list[Decision]:
    """Decide keep/delete for each candidate; the result is sorted newest first. ``today``:
    versions dated after it are kept and not counted (see the module docstring)."""
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError("retention candidates must have unique names")
    ordered = sorted(candidates, key=lambda c: (c.date, c.seq, c.name), reverse=True)
    future = {c.name for c in ordered if today is not None and c.date > today}
    good = [c for c in ordered if c.good and c.name not in future]
    reasons: dict[str, list[str]] = {c.name: [] for c in ordered}

    for index, cand in enumerate(good[: policy.keep_last]):
        reasons[cand.name].append(f"keep_last {index + 1}/{policy.keep_last}")
    missed = _within_rule(good, policy, reasons)
    _calendar_rule(
        good, policy.keep_daily, lambda d: d, lambda d: f"daily {d.isoformat()}", reasons
    )
    _calendar_rule(
        good,
        policy.keep_weekly,
        lambda d: d.isocalendar()[:2],
        lambda d: "weekly {}-W{:02d}".format(*d.isocalendar()[:2]),
        reasons,
    )
    _calendar_rule(
        good,
        policy.keep_monthly,
        lambda d: (d.year, d.month),
        lambda d: f"monthly {d:%Y-%m}",
        reasons,
    )
    if good:
        reasons[good[0].name].append("newest good version")
    kept_good = sum(1 for c in good if reasons[c.name])
    for cand in good:
        if kept_good >= minimum:
            break
        if not reasons[cand.name]:
            reasons[cand.name].append(f"never fewer than {minimum} versions")
            kept_good += 1
    for cand in ordered:
        if cand.pin:
            reasons[cand.name].append(cand.pin)
        if cand.name in future:
            reasons[cand.name].append(
                f"dated after today ({today}): the clock or the name is wrong; kept, not counted"
            )
        if not cand.good:
            reasons[cand.name].append(
                "corrupted or missing: not counted; left for `model-safety repair` or inspection"
            )

    decisions = []
    for cand in ordered:
        why = reasons[cand.name]
        if why:
            decisions.append(Decision(cand.name, True, tuple(why)))
        else:
            outside = f"outside policy ({policy.describe()})"
            why_not = (missed[cand.name], outside) if cand.name in missed else (outside,)
            decisions.append(Decision(cand.name, False, why_not))
    return decisions
