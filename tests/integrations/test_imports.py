"""The frameworks are imported by the integration modules only: ``import agent``, the CLI and
``agent.integrations`` itself never load them, and a missing one is an error naming the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import cli_env

FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "accelerate")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120
    )


def test_importing_agent_and_the_integrations_package_loads_no_framework():
    proc = _run(
        "import sys, agent, agent.api, agent.cli.main, agent.integrations, "
        "agent.integrations.session; from agent import ModelSafety; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "absent", "extra"),
    [
        ("lightning", ("lightning", "lightning.pytorch", "pytorch_lightning"), "lightning"),
        ("transformers", ("transformers",), "transformers"),
    ],
)
def test_a_missing_framework_is_an_error_that_names_the_extra(module, absent, extra):
    # a None entry in sys.modules is how Python spells "this module cannot be imported"
    hide = "; ".join(f"sys.modules[{name!r}] = None" for name in absent)
    proc = _run(f"import sys; {hide}; import agent.integrations.{module}")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ")
    assert f"pip install 'model-safety[{extra}]'" in last
