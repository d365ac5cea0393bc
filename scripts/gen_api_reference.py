"""Write docs/reference/<package>.md: one mkdocstrings block per public module of terracarbon.

Run after adding or removing a module (``python scripts/gen_api_reference.py``); ``tests/docs`` fails when the pages
are out of date, and ``make docs`` builds them with ``mkdocs build --strict``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "terracarbon"
OUT = ROOT / "docs" / "reference"

# sub-packages whose modules are internal plumbing rather than a user-facing API
SKIP_PACKAGES = {"cli"}


def modules(package: Path) -> list[str]:
    """Public module names of one sub-package (``terracarbon.raster.io`` ...), sorted, ``__init__`` first."""
    names = [f"terracarbon.{package.name}"]
    for f in sorted(package.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("")
        if f.name == "__init__.py":
            if f.parent == package:
                continue
            rel = rel.parent
        if any(part.startswith("_") for part in rel.parts):
            continue
        names.append(".".join(rel.parts))
    return names


def pages() -> dict[str, str]:
    """File name -> Markdown text of every reference page (including the index)."""
    out: dict[str, str] = {}
    index = ["# API reference", "", "Generated from the docstrings (mkdocstrings). One page per sub-package:", ""]
    for package in sorted(p for p in PKG.iterdir() if (p / "__init__.py").exists()):
        if package.name in SKIP_PACKAGES:
            continue
        mods = modules(package)
        text = [f"# `terracarbon.{package.name}`", ""]
        for m in mods:
            text += [f"## `{m}`", "", f"::: {m}", "    options:", "      show_root_heading: false", ""]
        out[f"{package.name}.md"] = "\n".join(text)
        index.append(f"- [`terracarbon.{package.name}`]({package.name}.md)")
    out["index.md"] = "\n".join(index) + "\n"
    return out


def main(check: bool = False) -> int:
    """Write the pages (or with ``--check`` only compare them); return 1 when a page is stale."""
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    want = pages()
    for name, text in want.items():
        path = OUT / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not check:
                path.write_text(text)
    for path in OUT.glob("*.md"):
        if path.name not in want:
            stale.append(path.name)
            if not check:
                path.unlink()
    if check and stale:
        print("stale API reference pages: " + ", ".join(sorted(stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
