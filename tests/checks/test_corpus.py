"""Every case of the hostile-checkpoint corpus gets its stated verdict from the one checker, with
a reason that says what was found, within the checker's limits, and never with a traceback; and
the checker agrees with torch's own loader wherever torch can answer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.checks.limits import for_size
from agent.checks.runner import check_file
from tests.checks.corpus import CASES
from tests.support import cli_env

# one worker judges the whole corpus once (test_the_checker_agrees_with_torch needs every verdict)
pytestmark = pytest.mark.xdist_group("corpus")


@pytest.fixture(scope="module")
def verdicts(corpus):
    directory, cases = corpus
    return {c.name: check_file(directory / c.name) for c in cases}


@pytest.mark.parametrize("case", [c for c, _ in CASES], ids=lambda c: c.name)
def test_each_case_gets_its_stated_verdict(case, verdicts, corpus):
    verdict = verdicts[case.name]
    assert verdict.ok == (case.expect == "pass"), verdict
    if case.expect == "fail":
        assert case.reason in (verdict.reason or ""), verdict
        assert "Traceback" not in (verdict.reason or "") and "crashed" not in (verdict.reason or "")
        assert len(verdict.reason or "") < 240, "a reason is one line"
    size = (corpus[0] / case.name).stat().st_size
    if verdict.peak_rss_mb is not None:
        # the child's own peak: torch (~220 MiB) plus what the file was allowed
        assert verdict.peak_rss_mb * 2**20 < 400 * 2**20 + for_size(size).memory_bytes, verdict


def test_the_checker_agrees_with_torch(corpus, verdicts):
    directory, cases = corpus
    agreeing = [c for c in cases if c.torch_agrees]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.checks.oracle", *(str(directory / c.name) for c in agreeing)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=600,
    )
    torch_says = json.loads(proc.stdout.strip().splitlines()[-1])
    disagree = {
        c.name: (torch_says[c.name], verdicts[c.name].reason)
        for c in agreeing
        if torch_says[c.name] is not None and torch_says[c.name] != verdicts[c.name].ok
    }
    assert not disagree
    # the oracle answered for nearly every case; the few it could not are bombs it ran out on
    unanswered = [c.name for c in agreeing if torch_says[c.name] is None]
    assert all(n for n in unanswered if "bomb" in n or "claims" in n), unanswered


def test_memory_limit_is_a_refusal_that_names_it(verdicts):
    reason = verdicts["legacy_storage_claims_4gb.pth"].reason or ""
    assert reason == "the check ran out of its 256 MiB memory limit"


def test_no_payload_ran(corpus, verdicts, tmp_path):
    # the code cases run `echo ... > /dev/null`; nothing else they could do is seen, so prove
    # the loader never unpickled them by checking that torch refused before any REDUCE ran
    for name in ("code_os_system.pth", "code_builtins_eval.pth", "code_bare_pickle.pt"):
        assert (verdicts[name].reason or "").startswith("could run code"), verdicts[name]
