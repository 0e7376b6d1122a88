"""Retention is pure, so its rules are checked exhaustively here with hypothesis, plus the
documented calendar example."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rules.retention import Candidate, RetentionPolicy, plan_retention

DAY0 = dt.date(2024, 1, 1)


def cand(day: int, seq: int = 0, good: bool = True, pin: str | None = None) -> Candidate:
    date = DAY0 + dt.timedelta(days=day)
    return Candidate(f"m_v{date.isoformat()}.{seq}.pth", date, seq, good, pin)


candidates_st = st.lists(
    st.builds(
        cand,
        day=st.integers(0, 400),
        seq=st.integers(0, 2),
        good=st.booleans() | st.just(True),
        pin=st.none() | st.none() | st.just("only copy"),
    ),
    max_size=30,
    unique_by=lambda c: c.name,
)
policy_st = st.builds(
    RetentionPolicy,
    keep_last=st.integers(0, 6),
    keep_daily=st.integers(0, 6),
    keep_weekly=st.integers(0, 5),
    keep_monthly=st.integers(0, 5),
    keep_within_days=st.integers(0, 60) | st.just(0),
    within_cap=st.none() | st.integers(0, 5),
)


@settings(max_examples=300, deadline=None)
@given(candidates_st, policy_st)
def test_safety_rules_hold_for_any_history(cands, policy):
    decisions = plan_retention(cands, policy)
    by_name = {d.name: d for d in decisions}
    assert set(by_name) == {c.name for c in cands}
    good = sorted((c for c in cands if c.good), key=lambda c: (c.date, c.seq), reverse=True)
    kept_good = [c for c in good if by_name[c.name].keep]
    if good:
        assert by_name[good[0].name].keep, "the newest good version is always kept"
    assert len(kept_good) >= min(2, len(good)), "never fewer than 2 good versions"
    for c in cands:
        if c.pin or not c.good:
            assert by_name[c.name].keep, "pinned and corrupted versions are never deleted"
        assert by_name[c.name].reasons, "every decision says why"
    for c in good[: policy.keep_last]:
        assert by_name[c.name].keep
    if policy.keep_within_days and good:
        days = policy.keep_within_days
        within = [c for c in good if (good[0].date - c.date).days <= days]
        for c in within[: policy.within_cap]:
            assert by_name[c.name].keep, "every version of the age window (up to its cap) is kept"
    # newest first
    order = [(c.date, c.seq) for c in sorted(cands, key=lambda c: by_name_index(decisions, c))]
    assert order == sorted(order, reverse=True)


def by_name_index(decisions, c):
    return [d.name for d in decisions].index(c.name)


@settings(max_examples=200, deadline=None)
@given(candidates_st, policy_st)
def test_applying_retention_twice_deletes_nothing_more(cands, policy):
    kept = {d.name for d in plan_retention(cands, policy) if d.keep}
    survivors = [c for c in cands if c.name in kept]
    assert all(d.keep for d in plan_retention(survivors, policy))


def test_calendar_example_from_the_docs():
    # Weekly versions every Monday for a year, keep_last 4 + keep_monthly 6: the 4 newest Mondays
    # plus the newest version of each of the 6 most recent months.
    mondays = [dt.date(2024, 1, 1) + dt.timedelta(weeks=i) for i in range(52)]
    cands = [Candidate(f"m_v{d}.pth", d) for d in mondays]
    decisions = plan_retention(cands, RetentionPolicy(keep_last=4, keep_monthly=6))
    kept = [d.name for d in decisions if d.keep]
    assert kept == [
        "m_v2024-12-23.pth",
        "m_v2024-12-16.pth",
        "m_v2024-12-09.pth",
        "m_v2024-12-02.pth",
        "m_v2024-11-25.pth",
        "m_v2024-10-28.pth",
        "m_v2024-09-30.pth",
        "m_v2024-08-26.pth",
        "m_v2024-07-29.pth",
    ]
    reasons = {d.name: d.reasons for d in decisions}
    assert reasons["m_v2024-12-23.pth"] == (
        "keep_last 1/4",
        "monthly 2024-12",
        "newest good version",
    )
    assert reasons["m_v2024-01-01.pth"] == ("outside policy (keep_last 4, keep_monthly 6)",)


def test_weekly_uses_iso_weeks_and_daily_uses_calendar_days():
    # Sunday and Monday fall in different ISO weeks; two versions on one day count once.
    sun, mon = dt.date(2024, 3, 3), dt.date(2024, 3, 4)
    cands = [
        Candidate("a", sun, 0),
        Candidate("b", mon, 0),
        Candidate("c", mon, 1),
    ]
    weekly = {d.name: d.keep for d in plan_retention(cands, RetentionPolicy(0, keep_weekly=2))}
    assert weekly == {"c": True, "b": False, "a": True}
    daily = {d.name: d.keep for d in plan_retention(cands, RetentionPolicy(0, keep_daily=1))}
    # keep_daily 1 keeps only "c"; the 2-version floor then keeps "b" too
    assert daily == {"c": True, "b": True, "a": False}


def test_corrupted_versions_do_not_fill_slots():
    cands = [cand(3, good=False), cand(2), cand(1), cand(0)]
    decisions = plan_retention(cands, RetentionPolicy(keep_last=2))
    keep = [d.keep for d in decisions]
    assert keep == [True, True, True, False]
    assert "corrupted" in decisions[0].reasons[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keep_lats": 3}, "unknown key 'keep_lats' (did you mean 'keep_last'?)"),
        ({"keep_monthly": -1}, "retention.keep_monthly must be a whole number >= 0"),
        ({"keep_daily": "7"}, "retention.keep_daily must be a whole number >= 0"),
    ],
)
def test_policy_from_mapping_names_the_bad_key(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RetentionPolicy.from_mapping(data, default_keep_last=4)


def weekly(count: int, last: dt.date = dt.date(2026, 11, 30)) -> list[Candidate]:
    return [
        Candidate(f"m_v{last - dt.timedelta(weeks=w)}.pth", last - dt.timedelta(weeks=w))
        for w in range(count)
    ]


def test_keep_within_days_counts_from_the_newest_version_not_from_today():
    # weekly versions that stopped in 2025: measured from today every one would be "old"
    cands = weekly(10, last=dt.date(2025, 3, 3))
    policy = RetentionPolicy(keep_last=0, keep_within_days=14)
    decisions = plan_retention(cands, policy, today=dt.date(2026, 11, 30))
    kept = [d.name for d in decisions if d.keep]
    assert kept == ["m_v2025-03-03.pth", "m_v2025-02-24.pth", "m_v2025-02-17.pth"]
    by_name = {d.name: d.reasons for d in decisions}
    assert by_name["m_v2025-02-17.pth"] == ("within 14 days of the newest (2025-03-03)",)
    assert by_name["m_v2025-02-10.pth"][0] == (
        "dated 21 days before the newest (2025-03-03): older than keep_within_days 14"
    )


def test_max_backups_caps_keep_within_days_when_keep_last_is_not_written():
    policy = RetentionPolicy.from_mapping({"keep_within_days": 30}, default_keep_last=3)
    assert policy == RetentionPolicy(keep_last=0, keep_within_days=30, within_cap=3)
    assert policy.describe() == "keep_within_days 30 (at most 3: max_backups)"
    daily = [
        Candidate(
            f"m_v{dt.date(2026, 11, 30) - dt.timedelta(days=d)}.pth",
            dt.date(2026, 11, 30) - dt.timedelta(days=d),
        )
        for d in range(40)
    ]
    decisions = plan_retention(daily, policy)
    assert [d.name for d in decisions if d.keep] == [c.name for c in daily[:3]]
    assert decisions[2].reasons == ("within 30 days of the newest (2026-11-30) 3/3",)
    assert decisions[3].reasons[0] == (
        "within 30 days of the newest (2026-11-30) but not among the 3 newest of those "
        "(max_backups 3 caps keep_within_days)"
    )
    # sparse versions: max_backups no longer keeps old ones; only the floor of 2 does
    sparse = [
        Candidate(f"m_v{d}.pth", d)
        for d in (dt.date(2026, 11, 30), dt.date(2026, 8, 1), dt.date(2026, 5, 1))
    ]
    decisions = plan_retention(sparse, policy)
    assert [d.keep for d in decisions] == [True, True, False]
    assert decisions[1].reasons == ("never fewer than 2 versions",)


def test_written_keep_last_and_keep_within_days_are_a_union():
    policy = RetentionPolicy.from_mapping(
        {"keep_last": 2, "keep_within_days": 7}, default_keep_last=9
    )
    assert policy.within_cap is None
    decisions = plan_retention(weekly(5), policy)
    reasons = [d.reasons for d in decisions]
    assert reasons[0] == (
        "keep_last 1/2",
        "within 7 days of the newest (2026-11-30)",
        "newest good version",
    )
    assert reasons[1] == ("keep_last 2/2", "within 7 days of the newest (2026-11-30)")
    assert [d.keep for d in decisions] == [True, True, False, False, False]


def test_keep_within_days_ignores_corrupted_and_future_versions_as_the_newest():
    cands = [
        Candidate("future", dt.date(2027, 1, 1)),
        Candidate("bad", dt.date(2026, 11, 29), good=False),
        *weekly(3, last=dt.date(2026, 11, 1)),
    ]
    policy = RetentionPolicy(keep_last=0, keep_within_days=7)
    keep = {d.name: d.keep for d in plan_retention(cands, policy, today=dt.date(2026, 11, 30))}
    # the reference is 2026-11-01, the newest good version dated up to today
    assert keep == {
        "future": True,
        "bad": True,
        "m_v2026-11-01.pth": True,
        "m_v2026-10-25.pth": True,
        "m_v2026-10-18.pth": False,
    }


def test_policy_default_keep_last():
    assert RetentionPolicy.from_mapping({"keep_monthly": 6}, default_keep_last=4) == (
        RetentionPolicy(keep_last=4, keep_monthly=6)
    )


# -- more properties: input order, any floor, real names whose string order misleads -----------
def real_cand(day: int, seq: int, good: bool) -> Candidate:
    """A candidate under the name the agent builds: ``.10`` sorts before ``.9`` as a string."""
    from agent.rules.naming import version_name

    date = DAY0 + dt.timedelta(days=day)
    return Candidate(version_name("m.pth", date, seq), date, seq, good)


real_st = st.lists(
    st.builds(real_cand, day=st.integers(0, 3), seq=st.integers(1, 12), good=st.booleans()),
    min_size=1,
    max_size=25,
    unique_by=lambda c: c.name,
)


@settings(max_examples=200, deadline=None)
@given(candidates_st, policy_st, st.integers(1, 5), st.randoms(use_true_random=False))
def test_decisions_do_not_depend_on_input_order_and_respect_any_floor(cands, policy, minimum, rnd):
    decisions = plan_retention(cands, policy, minimum=minimum)
    shuffled = list(cands)
    rnd.shuffle(shuffled)
    assert plan_retention(shuffled, policy, minimum=minimum) == decisions
    good = [c for c in cands if c.good]
    kept = {d.name for d in decisions if d.keep}
    assert sum(c.name in kept for c in good) >= min(minimum, len(good))
    # idempotent with this floor too
    survivors = [c for c in cands if c.name in kept]
    assert all(d.keep for d in plan_retention(survivors, policy, minimum=minimum))


@settings(max_examples=200, deadline=None)
@given(real_st, st.integers(0, 4))
def test_newest_is_chosen_by_date_and_sequence_never_by_name(cands, keep_last):
    decisions = plan_retention(cands, RetentionPolicy(keep_last=keep_last))
    by_name = {d.name: d for d in decisions}
    good = sorted((c for c in cands if c.good), key=lambda c: (c.date, c.seq), reverse=True)
    if good:
        assert "newest good version" in by_name[good[0].name].reasons
    for c in good[:keep_last]:
        assert by_name[c.name].keep
    assert [d.name for d in decisions] == [
        c.name for c in sorted(cands, key=lambda c: (c.date, c.seq), reverse=True)
    ]
