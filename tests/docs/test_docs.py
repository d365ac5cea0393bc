"""The documentation is part of the product: the site builds strictly, the API reference is current, every
``terracarbon`` command shown in the docs exists with the options it shows, and the examples marked runnable run.

Runnable examples: a fenced ``bash`` or ``python`` block directly preceded by the line ``<!-- docs-test -->`` is
executed, in page order, in one temporary folder per page (so a later block can use what an earlier one wrote).
``$SHARED`` points at ``../shared`` for blocks that read the real samples; pages whose runnable blocks need it are
skipped with that reason when it is absent.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SHARED = ROOT.parent / "shared"
MARK = "<!-- docs-test -->"
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]


def _blocks(path: Path) -> list[tuple[str, str, bool, int]]:
    """(language, code, marked runnable, first line number) of every fenced block in a Markdown file."""
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group("lang") is not None:
            marked = i > 0 and lines[i - 1].strip() == MARK
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            out.append((m.group("lang"), "\n".join(body), marked, start + 1))
        i += 1
    return out


def _commands(code: str) -> list[str]:
    """Each ``terracarbon ...`` command of a shell block, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", code)
    cmds = []
    for line in joined.splitlines():
        line = line.strip()
        for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
            if part.startswith("terracarbon "):
                cmds.append(part)
    return cmds


def _cli():
    from terracarbon.cli import app

    return typer.main.get_command(app)


def _check_command(group, cmd: str) -> str | None:
    """None when ``cmd`` names an existing sub-command and only options it has; else what is wrong."""
    try:
        tokens = shlex.split(cmd, comments=True)
    except ValueError as exc:
        return f"cannot parse: {exc}"
    tokens = tokens[1:]
    node = group  # typer vendors click: duck-type groups by their ``commands``
    path = ["terracarbon"]
    while hasattr(node, "commands") and tokens and not tokens[0].startswith("-"):
        name = tokens.pop(0)
        sub = node.commands.get(name)
        if sub is None:
            return f"no sub-command {' '.join(path)} {name!r}"
        node, path = sub, [*path, name]
    if hasattr(node, "commands"):
        return None  # a group shown with --help or alone
    opts = {"--help"}
    for p in node.params:
        opts.update(getattr(p, "opts", []))
        opts.update(getattr(p, "secondary_opts", []))
    for tok in tokens:
        if tok == "--":
            break  # the rest belongs to a wrapped command (footprint track -- CMD)
        if tok.startswith("-") and len(tok) > 1 and not re.match(r"^-\d", tok):
            name = tok.split("=", 1)[0]
            if name not in opts:
                return f"{' '.join(path)} has no option {name}"
    return None


def test_every_documented_command_exists():
    group = _cli()
    problems = []
    n = 0
    for page in _pages():
        for lang, code, _, line in _blocks(page):
            if lang not in ("bash", "sh", "shell", "console", ""):
                continue
            for cmd in _commands(code):
                n += 1
                why = _check_command(group, cmd)
                if why:
                    problems.append(f"{page.relative_to(ROOT)}:{line}: {why}\n    {cmd}")
    assert n > 50, f"only {n} documented commands found: the extractor is broken"
    assert not problems, "documented commands that do not exist:\n" + "\n".join(problems)


def test_api_reference_is_current():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api_reference.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr + "\n(run: python scripts/gen_api_reference.py)"


def test_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e .[dev])")
    res = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "raster" / "index.html").exists()
    html = (tmp_path / "site" / "reference" / "raster" / "index.html").read_text()
    assert "predict_raster" in html  # the API reference is rendered from the docstrings


def _runnable_pages() -> list[Path]:
    return [p for p in _pages() if any(marked for _, _, marked, _ in _blocks(p))]


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: p.name)
def test_marked_examples_run(page, tmp_path):
    blocks = [(lang, code, line) for lang, code, marked, line in _blocks(page) if marked]
    if any("$SHARED" in code for _, code, _ in blocks) and not SHARED.is_dir():
        pytest.skip(f"{page.name}: its examples read ../shared (absent)")
    env = {**os.environ, "SHARED": str(SHARED), "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for lang, code, line in blocks:
        if lang in ("bash", "sh", "shell"):
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)
        elif lang == "python":
            res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=600)
        else:
            raise AssertionError(f"{page.name}:{line}: cannot run a {lang!r} block")
        assert res.returncode == 0, f"{page.name}:{line} failed:\n{code}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"
