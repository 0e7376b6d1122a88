"""Properties of the push plan (agent.rules.push_plan) for any local and remote state: a corrupt or
blocked local copy is never sent, nothing on the remote is ever deleted or overwritten with other
bytes than the local file's, a copy's source holds the same bytes, and applying the plan makes
the next plan a no-op. The examples are in test_sync_plan.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rules.push_plan import Action, LocalFile, RemoteFile, Step, plan_push

NAMES = [f"m_v2024-01-{d:02d}.pth" for d in range(1, 9)] + ["m.pth", "m_backup.pth", "tok.json"]
SHAS = ["a" * 64, "b" * 64, "c" * 64, "d" * 64]

local_st = st.lists(
    st.builds(
        LocalFile,
        name=st.sampled_from(NAMES),
        size=st.sampled_from([10, 20]),
        sha256=st.sampled_from(SHAS),
        ok=st.booleans() | st.just(True),
        blocked=st.none() | st.none() | st.just("failed the structural check: NaN"),
        md5=st.none() | st.sampled_from(["m1", "m2"]),
    ),
    max_size=len(NAMES),
    unique_by=lambda f: f.name,
)


@st.composite
def remote_st(draw) -> dict[str, RemoteFile]:
    out = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))):
        size = draw(st.sampled_from([10, 20]))
        hashes = draw(
            st.sampled_from(
                [
                    {},
                    {"sha256": draw(st.sampled_from(SHAS))},
                    {"md5": draw(st.sampled_from(["m1", "m2"]))},
                ]
            )
        )
        recorded = draw(
            st.none()
            | st.fixed_dictionaries(
                {"sha256": st.sampled_from(SHAS), "size": st.sampled_from([10, 20])}
            )
        )
        out[name] = RemoteFile(name, size, hashes, recorded)
    return out


def apply(steps: list[Step], local: list[LocalFile], remote: dict[str, RemoteFile]) -> None:
    """What a push does to the remote: each upload or copy stores the local file's bytes (the
    provider reports their sha256, and md5 where the local file has one), recorded in the
    catalog."""
    by_name = {f.name: f for f in local}
    for s in steps:
        if s.action in (Action.UPLOAD, Action.COPY):
            lf = by_name[s.name]
            hashes = {"sha256": lf.sha256} | ({"md5": lf.md5} if lf.md5 else {})
            remote[s.name] = RemoteFile(
                s.name, lf.size, hashes, {"sha256": lf.sha256, "size": lf.size}
            )


@settings(max_examples=200, deadline=None)
@given(local_st, remote_st(), st.booleans())
def test_push_plan_safety(local, remote, can_copy):
    steps = plan_push(local, remote, can_copy=can_copy)
    by_name = {f.name: f for f in local}
    # one step per local file, in order, each with a reason; nothing else is touched
    assert [s.name for s in steps] == [f.name for f in local]
    assert all(s.reason for s in steps)
    assert {s.action for s in steps} <= set(Action)  # no delete action exists at all
    for i, s in enumerate(steps):
        lf = by_name[s.name]
        if not lf.ok or lf.blocked:
            assert s.action is Action.REFUSE, "a corrupt or blocked copy is never sent"
        if s.action is Action.COPY:
            assert can_copy and s.source and s.source != s.name
            # from an object already there with these bytes, or one this push sends first
            sent_before = {t.name for t in steps[:i] if t.action in (Action.UPLOAD, Action.COPY)}
            if s.source in sent_before:
                assert by_name[s.source].sha256 == lf.sha256
            else:
                src = remote[s.source]
                assert (src.hashes.get("sha256") or (src.recorded or {}).get("sha256")) == lf.sha256
        if s.action is Action.PRESENT:
            # skipped only when no checksum the server holds contradicts the local file, and
            # something vouches for it: a common checksum, or else the catalog's sha256
            there = remote[s.name]
            assert there.size == lf.size
            held = {"sha256": lf.sha256, "md5": lf.md5}
            common = [a for a in ("sha256", "md5") if there.hashes.get(a) and held[a]]
            assert all(there.hashes[a] == held[a] for a in common)
            assert common or (there.recorded or {}).get("sha256") == lf.sha256
    # content goes over the wire once: no two uploads of the same bytes when a copy is possible
    uploaded = [by_name[s.name].sha256 for s in steps if s.action is Action.UPLOAD]
    assert not can_copy or len(uploaded) == len(set(uploaded))


@settings(max_examples=150, deadline=None)
@given(local_st, remote_st(), st.booleans())
def test_applying_the_plan_makes_the_next_one_a_no_op(local, remote, can_copy):
    before = dict(remote)
    steps = plan_push(local, remote, can_copy=can_copy)
    apply(steps, local, remote)
    # nothing the push did not send changed on the remote
    sent = {s.name for s in steps if s.action in (Action.UPLOAD, Action.COPY)}
    assert {n: r for n, r in remote.items() if n not in sent} == {
        n: r for n, r in before.items() if n not in sent
    }
    again = plan_push(local, remote, can_copy=can_copy)
    for s in again:
        assert s.action in (Action.PRESENT, Action.REFUSE), s
    apply(again, local, remote)
    assert plan_push(local, remote, can_copy=can_copy) == again
