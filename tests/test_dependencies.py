"""Dependencies as declared: every runtime dependency is imported by src/, every import of src/ is declared
(deptry, configured in pyproject.toml's [tool.deptry]); the peers live in the ``peers`` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_declared_dependencies_match_the_imports():
    deptry = shutil.which("deptry", path=str(Path(sys.executable).parent)) or shutil.which("deptry")
    if deptry is None:
        pytest.skip("deptry is not installed (pip install -e .[dev])")
    res = subprocess.run([deptry, "src"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-5000:]


def test_peers_are_an_extra_not_a_runtime_dependency():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for d in project["dependencies"]}
    peers = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["optional-dependencies"]["peers"]}
    assert {"terratorch", "torchgeo"} <= peers
    assert not runtime & {"terratorch", "torchgeo", "rasterstats"}, runtime & {"terratorch", "torchgeo", "rasterstats"}
