"""schemathesis against the OpenAPI document of the running tickets service: no 5xx,
and every answer (status, content type, headers, body) matches the document."""

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ALICE, ROOT

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def run_schemathesis(api, user, max_examples: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            SCHEMATHESIS, "run", f"{api.base_url}/api/v1/openapi.json",
            "-H", f"Authorization: Bearer {api.token(user)}",
            "--checks", "all",
            # Schema-valid is not always valid: an unknown category or login is a 422.
            "--exclude-checks", "positive_data_acceptance",
            "--max-examples", str(max_examples),
            "--generation-deterministic",
            "--request-timeout", "10",
            "--workers", "1",
        ],
        capture_output=True, text=True, timeout=600,
    )


def test_the_api_keeps_to_its_document_for_an_admin(api, routed):
    result = run_schemathesis(api, ROOT, max_examples=3)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "generated" in result.stdout


def test_the_api_keeps_to_its_document_for_a_requester(api, routed):
    result = run_schemathesis(api, ALICE, max_examples=2)
    assert result.returncode == 0, result.stdout[-6000:]
