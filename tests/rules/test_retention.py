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
