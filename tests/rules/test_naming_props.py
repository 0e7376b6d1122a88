"""Properties of names beyond the round trips in tests/local/test_naming.py: only names we build
parse as ours (near misses never do), sorting ignores input order and foreign names, identify
agrees with parse, and no name that passes the remote-name check can land outside models_dir."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.config import ModelConfig
from agent.remote.connect import unsafe_name
from agent.rules.naming import (
    backup_name,
    identify,
    parse_name,
    replaced_name,
    sort_versions,
    version_name,
)

stems = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="_-."),
    min_size=1,
    max_size=16,
).filter(lambda s: not s.startswith("."))
exts = st.sampled_from([".pth", ".pt", ".safetensors", ".json", ".bin", ""])
dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2199, 12, 31))
seqs = st.integers(min_value=1, max_value=1200)
when = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2199, 1, 1))


def build(kind: str, base: str, date: dt.date, seq: int, at: dt.datetime) -> str:
    if kind == "current":
        return base
    if kind == "backup":
        return backup_name(base)
    if kind == "version":
        return version_name(base, date, seq)
    return replaced_name(base, at, seq)


def rebuilt(name: str, base: str) -> str | None:
    """The name we would build for what ``name`` parses as (None if it is not ours)."""
    p = parse_name(name, base)
    if p is None:
        return None
    if p.kind == "replaced":
        assert p.replaced_at is not None
        return replaced_name(base, p.replaced_at, p.seq)
    return build(p.kind, base, p.date or dt.date.min, p.seq, dt.datetime.min)


built_names = st.builds(
    lambda kind, stem, ext, date, seq, at: (build(kind, stem + ext, date, seq, at), stem + ext),
    st.sampled_from(["current", "backup", "version", "replaced"]),
    stems,
    exts,
    dates,
    seqs,
    when,
)
edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(0, 400),
        st.sampled_from(list("0123456789._-vVa/ \0")),
    ),
    min_size=1,
    max_size=3,
)


def mutate(name: str, ops: list[tuple[str, int, str]]) -> str:
    for op, pos, ch in ops:
        i = pos % (len(name) + 1)
        if op == "insert":
            name = name[:i] + ch + name[i:]
        elif name:
            i = min(i, len(name) - 1)
            name = name[:i] + (ch if op == "replace" else "") + name[i + 1 :]
    return name


@settings(max_examples=400, deadline=None)
@given(built_names, edits)
def test_only_names_we_build_parse_as_ours(built, ops):
    """A near miss of one of our names (a digit changed, a dot dropped, '.01' for '.1') either
    does not parse, or parses as a name we would build byte for byte: parsing never accepts a
    foreign spelling that a rebuild would then write under another name."""
    name, base = built
    other = mutate(name, ops)
    back = rebuilt(other, base)
    if back is not None and parse_name(other, base).kind != "replaced":
        assert back == other


@given(st.text(max_size=40), stems, exts)
def test_arbitrary_text_never_parses_as_a_foreign_spelling(text, stem, ext):
    base = stem + ext
    back = rebuilt(text, base)
    if back is not None and parse_name(text, base).kind != "replaced":
        assert back == text


@given(
    st.lists(st.tuples(dates, seqs), min_size=1, max_size=25, unique=True),
    st.lists(st.text(min_size=1, max_size=30), max_size=10),
    st.randoms(use_true_random=False),
)
def test_sorting_ignores_input_order_and_drops_foreign_names(pairs, foreign, rnd):
    base = "dinesh_ai_model.pth"
    names = [version_name(base, d, s) for d, s in pairs]
    mixed = names + [f for f in foreign if f not in names]
    rnd.shuffle(mixed)
    ordered = sort_versions(mixed, base)
    assert set(ordered) == {n for n in mixed if (p := parse_name(n, base)) and p.kind == "version"}
    assert ordered == sort_versions(list(reversed(mixed)), base)
    keys = [(parse_name(n, base).date, parse_name(n, base).seq) for n in ordered]
    assert keys == sorted(keys, reverse=True)
    assert ordered[0] == version_name(base, *max(pairs))


@given(built_names, stems, exts)
def test_identify_agrees_with_parse(built, other_stem, other_ext):
    name, base = built
    other = other_stem + other_ext
    assume(other != base)
    models = [ModelConfig("a", base), ModelConfig("b", other)]
    ident = identify(name, models)
    assert ident is not None
    # the longest base that parses the name wins; our own base always parses it
    winner = base if ident.model == "a" else other
    assert parse_name(name, winner) is not None
    if parse_name(name, other) is None or len(other) <= len(base):
        assert ident.model == "a" and ident.base == base
        assert ident.kind == parse_name(name, base).kind


hostile_text = st.lists(
    st.sampled_from([*"ab._-/\\~ é", "\0", "..", "../", "/etc/", "x" * 120]), max_size=12
).map("".join)


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_a_name_passing_the_remote_check_stays_a_plain_file_in_models_dir(name):
    models_dir = Path("/srv/proj/models")
    why = unsafe_name(name, models_dir)
    if why is None:
        target = (models_dir / name).resolve()
        assert target.parent == models_dir
        assert "/" not in name and "\0" not in name and "\\" not in name
        assert not name.startswith(".")
    else:
        assert why  # a reason the user can read
