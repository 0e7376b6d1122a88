"""Names of a model saved as a directory (``file: llama-ft``): its copies are directories named
``llama-ft_backup``, ``llama-ft_v2026-11-30``, ``llama-ft_v2026-11-30.2``,
``llama-ft_replaced-<time>``; a dot in the directory's name is never an extension. Properties:
every name we build parses back to what built it, near misses never parse as a foreign
spelling, and identify tells a directory model's copies from a file model's."""

from __future__ import annotations

import datetime as dt

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.config import ModelConfig
from agent.rules import manifest
from agent.rules.naming import (
    backup_name,
    identify,
    parse_name,
    replaced_name,
    sort_versions,
    version_name,
)
from tests.rules.test_naming_props import dates, edits, mutate, seqs, stems, when


def build(kind: str, base: str, date: dt.date, seq: int, at: dt.datetime) -> str:
    if kind == "current":
        return base
    if kind == "backup":
        return backup_name(base, directory=True)
    if kind == "version":
        return version_name(base, date, seq, directory=True)
    return replaced_name(base, at, seq, directory=True)


kinds = st.sampled_from(["current", "backup", "version", "replaced"])


def test_the_issues_examples():
    day = dt.date(2026, 11, 30)
    assert backup_name("llama-ft", directory=True) == "llama-ft_backup"
    assert version_name("llama-ft", day, directory=True) == "llama-ft_v2026-11-30"
    assert version_name("llama-ft", day, 2, directory=True) == "llama-ft_v2026-11-30.2"
    # a dot in a directory's name is part of it, not an extension
    assert version_name("llama-3.1-ft", day, directory=True) == "llama-3.1-ft_v2026-11-30"
    assert version_name("llama-3.1-ft", day) == "llama-3_v2026-11-30.1-ft"  # as a file: an ext


@settings(max_examples=300, deadline=None)
@given(kinds, stems, dates, seqs, when)
def test_every_directory_name_we_build_parses_back(kind, stem, date, seq, at):
    name = build(kind, stem, date, seq, at)
    parsed = parse_name(name, stem, directory=True)
    assert parsed is not None and parsed.kind == kind
    if kind == "version":
        assert (parsed.date, parsed.seq) == (date, seq)
    if kind == "replaced":
        assert parsed.replaced_at == at and parsed.seq == seq


@settings(max_examples=300, deadline=None)
@given(kinds, stems, dates, seqs, when, edits)
def test_near_misses_never_parse_as_a_foreign_spelling(kind, stem, date, seq, at, ops):
    other = mutate(build(kind, stem, date, seq, at), ops)
    parsed = parse_name(other, stem, directory=True)
    if parsed is None or parsed.kind == "replaced":
        return
    rebuilt = build(parsed.kind, stem, parsed.date or dt.date.min, parsed.seq, at)
    assert rebuilt == other


@given(st.lists(st.tuples(dates, seqs), min_size=1, max_size=20, unique=True), stems)
def test_directory_versions_sort_by_date_then_number(pairs, stem):
    names = [version_name(stem, d, s, directory=True) for d, s in pairs]
    ordered = sort_versions(list(reversed(names)), stem, directory=True)
    assert ordered[0] == version_name(stem, *max(pairs), directory=True)
    assert len(ordered) == len(names)


@given(kinds, stems, dates, seqs, when)
def test_identify_says_a_directory_models_copy_is_a_directory(kind, stem, date, seq, at):
    name = build(kind, stem, date, seq, at)
    assume(kind != "current")
    ident = identify(name, [ModelConfig("m", stem, directory=True)])
    assert ident is not None and ident.directory and ident.kind == kind
    assert ident.companion is None


files = st.dictionaries(
    st.text(alphabet="abc/._-", min_size=1, max_size=12).filter(manifest.is_safe_relative),
    st.tuples(
        st.integers(0, 10**12), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
    ),
    min_size=1,
    max_size=8,
)


@given(files)
def test_a_manifest_identity_changes_with_any_file_and_survives_json(found):
    ident = manifest.identity(found)
    assert manifest.identity(manifest.from_json(manifest.to_json(found))) == ident
    path = sorted(found)[0]
    size, sha = found[path]
    assert manifest.identity({**found, path: (size + 1, sha)}) != ident
    assert manifest.compare(found, found).same
    fewer = dict(found)
    del fewer[path]
    assert manifest.compare(found, fewer).missing == (path,)


@given(st.text(max_size=30))
def test_an_unsafe_manifest_path_is_refused(path):
    if manifest.is_safe_relative(path):
        assert not path.startswith("/") and ".." not in path.split("/")
    else:
        try:
            manifest.from_json({path: {"size": 1, "sha256": "0" * 64}})
        except ValueError:
            return
        raise AssertionError(f"{path!r} accepted")
