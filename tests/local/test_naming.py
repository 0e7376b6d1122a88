"""The seed's file names: build/parse round trips and (date, seq) ordering."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from agent.config import ModelConfig
from agent.rules.naming import (
    backup_name,
    identify,
    parse_name,
    replaced_name,
    sort_versions,
    split_name,
    version_name,
)

stems = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="_-"),
    min_size=1,
    max_size=20,
)
exts = st.sampled_from([".pth", ".pt", ".safetensors", ".json", ".bin", ""])
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))
seqs = st.integers(min_value=1, max_value=500)


@given(stems, exts, dates, seqs)
def test_version_name_round_trips(stem, ext, date, seq):
    base = stem + ext
    parsed = parse_name(version_name(base, date, seq), base)
    assert parsed is not None
    assert (parsed.kind, parsed.date, parsed.seq, parsed.base) == ("version", date, seq, base)


@given(stems, exts)
def test_backup_name_round_trips(stem, ext):
    base = stem + ext
    assert parse_name(backup_name(base), base).kind == "backup"
    assert parse_name(base, base).kind == "current"


@given(stems, exts, st.datetimes(min_value=dt.datetime(2000, 1, 1)))
def test_replaced_name_round_trips(stem, ext, when):
    base = stem + ext
    parsed = parse_name(replaced_name(base, when), base)
    assert parsed.kind == "replaced"
    assert parsed.replaced_at == when


@given(st.lists(st.tuples(dates, seqs), min_size=1, max_size=30, unique=True))
def test_versions_sort_by_date_then_seq_never_by_string(pairs):
    base = "model.pth"
    names = [version_name(base, d, s) for d, s in pairs]
    ordered = sort_versions(names, base)
    keys = [(parse_name(n, base).date, parse_name(n, base).seq) for n in ordered]
    assert keys == sorted(pairs, reverse=True)


def test_same_day_suffix_sorts_numerically():
    base = "dinesh_ai_model.pth"
    day = dt.date(2024, 3, 4)
    names = [version_name(base, day, s) for s in (1, 2, 9, 10)]
    assert names[1] == "dinesh_ai_model_v2024-03-04.2.pth"
    # String order would put .10 before .2; ours puts it first (newest).
    assert sort_versions(names, base)[:2] == [names[3], names[2]]


def test_seed_names():
    assert backup_name("dinesh_ai_model.pth") == "dinesh_ai_model_backup.pth"
    assert version_name("tokenizer.json", dt.date(2024, 3, 11)) == "tokenizer_v2024-03-11.json"
    assert split_name(".hidden") == (".hidden", "")


def test_names_that_are_not_ours():
    base = "model.pth"
    for name in (
        "model.pt",
        "model_v2024-13-01.pth",  # no month 13
        "model_v2024-03-04.1.pth",  # never built: the first of a day has no suffix
        "model_v2024-03-04.02.pth",
        "model_backup.pth.tmp",
        "other_backup.pth",
        "model_old.pth",
        "notes.txt",
    ):
        assert parse_name(name, base) is None, name


def test_identify_models_and_companions():
    models = [
        ModelConfig("dinesh_ai_model", "dinesh_ai_model.pth", ("tokenizer.json",)),
        ModelConfig("other", "other.pth"),
    ]
    ident = identify("tokenizer_v2024-03-11.2.json", models)
    assert (ident.model, ident.kind, ident.companion, ident.seq) == (
        "dinesh_ai_model",
        "version",
        "tokenizer.json",
        2,
    )
    assert ident.date == dt.date(2024, 3, 11)
    assert identify("tokenizer_backup.json", models).kind == "backup"
    assert identify("other.pth", models).kind == "current"
    assert identify("dinesh_ai_model_v2024-03-04.pth", models).companion is None
    assert identify("readme.md", models) is None


def test_identify_prefers_longest_base():
    models = [ModelConfig("a", "model.pth"), ModelConfig("b", "model_v2024-01-01.pth")]
    assert identify("model_v2024-01-01_backup.pth", models).model == "b"
    assert identify("model_v2024-01-01.pth", models).model == "b"
    assert identify("model_v2024-01-01.pth", models).kind == "current"
