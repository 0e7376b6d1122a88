"""The hostile-checkpoint corpus, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.corpus import Case, build


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[Path, list[Case]]:
    directory = tmp_path_factory.mktemp("corpus")
    return directory, build(directory)
