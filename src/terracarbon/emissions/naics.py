"""NAICS taxonomy: the 2017 / 2022 code trees (2- to 6-digit), titles and descriptions.

The loaders read the official US Census Bureau files as published (``20xx_NAICS_Descriptions.xlsx``/``.csv`` with
columns Code, Title, Description; ``2-6 digit_20xx_Codes.xlsx``/``.csv`` with a sequence column, the code and the
title; ``6-digit_20xx_Codes``) and the NAICS index file (``NAICS17``/``NAICS22`` + ``INDEX ITEM DESCRIPTION``).
Titles lose the trailing superscript ``T`` (the Census "trilateral" marker); descriptions that only say "See industry
description for XXXXXX." are resolved to that industry's text.

Sectors 31-33, 44-45 and 48-49 are single nodes (code ``"31-33"`` etc.); the subsector ``311`` has parent ``31-33``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from terracarbon.errors import ConfigError, InputError

__all__ = [
    "LEVELS",
    "LEVEL_NAMES",
    "NAICS_URLS",
    "NaicsNode",
    "NaicsTaxonomy",
    "concordance",
    "default_data_dir",
    "download_naics",
    "load_labelled",
    "load_naics",
    "normalize_code",
    "sector_of",
]

LEVELS = (2, 3, 4, 5, 6)
LEVEL_NAMES = {2: "sector", 3: "subsector", 4: "industry group", 5: "NAICS industry", 6: "national industry"}
SECTOR_RANGES = {
    "31": "31-33",
    "32": "31-33",
    "33": "31-33",
    "44": "44-45",
    "45": "44-45",
    "48": "48-49",
    "49": "48-49",
}
#: Official Census Bureau files (downloaded once into the cache when the user asks for it).
NAICS_URLS = {
    2017: "https://www.census.gov/naics/2017NAICS/2017_NAICS_Descriptions.xlsx",
    2022: "https://www.census.gov/naics/2022NAICS/2022_NAICS_Descriptions.xlsx",
}

_TRILATERAL_T = re.compile(r"(?<=[a-z\)\]])T\s*$")
_SEE_REF = re.compile(r"^\s*See industry description for (\d{2,6})\.?\s*$", re.I)
_BOILERPLATE = re.compile(
    r"^(This (U\.S\. )?industry( group)? comprises establishments primarily engaged in( either)?:?\s*)", re.I
)


def normalize_code(code: object) -> str:
    """Return a NAICS code as a clean string (``111110``, ``31-33``); floats from spreadsheets lose ``.0``."""
    if code is None or (isinstance(code, float) and code != code):
        return ""
    s = str(code).strip()
    if s.endswith(".0") and s[:-2].isdigit():
        s = s[:-2]
    return s.replace("–", "-").replace(" ", "")


def sector_of(code: str) -> str:
    """Sector code of any NAICS code (``"336111"`` -> ``"31-33"``, ``"541511"`` -> ``"54"``)."""
    code = normalize_code(code)
    if "-" in code:
        return code
    return SECTOR_RANGES.get(code[:2], code[:2])


def _clean_title(title: object) -> str:
    t = "" if title is None or (isinstance(title, float) and title != title) else str(title)
    t = " ".join(t.split())
    return _TRILATERAL_T.sub("", t).strip()


def _clean_description(text: str) -> str:
    """Shorten an official description to its informative part (no cross-references, no boilerplate)."""
    if not text:
        return ""
    t = text.replace("The Sector as a Whole", " ")
    t = t.split("Cross-References.")[0]
    t = " ".join(t.split())
    return _BOILERPLATE.sub("", t).strip()


@dataclass
class NaicsNode:
    """One NAICS code with its place in the tree."""

    code: str
    title: str
    description: str = ""
    level: int = 6
    parent: str | None = None
    children: list[str] = field(default_factory=list)

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level]


class NaicsTaxonomy:
    """A NAICS code tree (one year) with titles and descriptions.

    Build it with :func:`load_naics` (official files) or :meth:`from_records` (any iterable of code/title/description).
    """

    def __init__(self, nodes: dict[str, NaicsNode], *, year: int | None = None, sources: Sequence[str] = ()):
        self.nodes = nodes
        self.year = year
        self.sources = list(sources)
        self._by_level: dict[int, list[str]] = {lv: [] for lv in LEVELS}
        for code, node in nodes.items():
            self._by_level[node.level].append(code)
        for lv in LEVELS:
            self._by_level[lv].sort()

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[str, str, str]],
        *,
        year: int | None = None,
        sources: Sequence[str] = (),
        source_name: str | None = None,
    ) -> NaicsTaxonomy:
        """Build a tree from ``(code, title, description)`` rows; missing intermediate levels are created."""
        raw: dict[str, tuple[str, str]] = {}
        for code, title, desc in records:
            code = normalize_code(code)
            if not code:
                continue
            if not (code.isdigit() and 2 <= len(code) <= 6) and code not in set(SECTOR_RANGES.values()):
                continue
            if code.isdigit() and len(code) == 2 and code in SECTOR_RANGES:
                code = SECTOR_RANGES[code]
            title = _clean_title(title)
            desc = "" if desc is None or (isinstance(desc, float) and desc != desc) else str(desc)
            old = raw.get(code)
            if old is None or (not old[1] and desc):
                raw[code] = (title or (old[0] if old else ""), desc)
        if not raw:
            raise InputError(
                source_name, "no NAICS codes found (expected a code column with 2- to 6-digit codes)"
            )
        # resolve "See industry description for XXXXXX."
        resolved: dict[str, str] = {}
        for code, (_, desc) in raw.items():
            seen = {code}
            d = desc
            m = _SEE_REF.match(d or "")
            while m and m.group(1) in raw and m.group(1) not in seen:
                seen.add(m.group(1))
                d = raw[m.group(1)][1]
                m = _SEE_REF.match(d or "")
            resolved[code] = "" if m else _clean_description(d)
        nodes: dict[str, NaicsNode] = {}
        for code, (title, _) in raw.items():
            level = 2 if "-" in code else len(code)
            nodes[code] = NaicsNode(code=code, title=title, description=resolved[code], level=level)
        # parents (placeholders for missing intermediate codes keep the child's title)
        for code in sorted(nodes, key=lambda c: nodes[c].level, reverse=True):
            node = nodes[code]
            if node.level == 2:
                continue
            node.parent = sector_of(code) if node.level == 3 else code[: node.level - 1]
            _ensure_chain(nodes, node.parent, node.title)
        for node in nodes.values():
            node.children = []
        for code in sorted(nodes):
            p = nodes[code].parent
            if p is not None:
                nodes[p].children.append(code)
        return cls(nodes, year=year, sources=sources)

    # -- access -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, code: object) -> bool:
        return normalize_code(code) in self.nodes

    def __getitem__(self, code: object) -> NaicsNode:
        c = normalize_code(code)
        if c.isdigit() and len(c) == 2 and c in SECTOR_RANGES:
            c = SECTOR_RANGES[c]
        try:
            return self.nodes[c]
        except KeyError:
            raise KeyError(
                f"NAICS code {code!r} is not in the {self.year or ''} taxonomy".replace("  ", " ")
            ) from None

    def get(self, code: object) -> NaicsNode | None:
        try:
            return self[code]
        except KeyError:
            return None

    def codes(self, level: int | None = None) -> list[str]:
        """All codes, or the codes of one level (2..6), sorted."""
        if level is None:
            return sorted(self.nodes)
        if level not in LEVELS:
            raise ConfigError(f"NAICS level must be one of {LEVELS}, got {level}")
        return list(self._by_level[level])

    def leaves(self) -> list[str]:
        """The 6-digit (national industry) codes."""
        return self.codes(6)

    def children(self, code: str | None) -> list[str]:
        """Children of ``code``; ``None`` means the root (all sectors)."""
        if code is None:
            return self.codes(2)
        return list(self[code].children)

    def ancestor(self, code: str, level: int) -> str:
        """The code at ``level`` on the path of ``code`` (e.g. ``ancestor("336111", 3) == "336"``)."""
        code = normalize_code(code)
        if level == 2:
            return sector_of(code)
        if "-" in code or len(code) < level:
            raise ConfigError(f"code {code} has no level-{level} ancestor")
        return code[:level]

    def path(self, code: str) -> list[str]:
        """Codes from the sector down to ``code``."""
        node = self[code]
        return [self.ancestor(node.code, lv) for lv in LEVELS if lv <= node.level]

    def document(self, code: str, max_chars: int | None = 600) -> str:
        """Retrieval text of a code: title, then the cleaned description (cut at ``max_chars``)."""
        node = self[code]
        text = node.title if not node.description else f"{node.title}: {node.description}"
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0]
        return text

    def fingerprint(self) -> str:
        """Stable hash of codes, titles and descriptions (keys embedding caches)."""
        h = hashlib.sha256()
        for code in sorted(self.nodes):
            n = self.nodes[code]
            h.update(f"{code}\x1f{n.title}\x1f{n.description}\x1e".encode())
        return h.hexdigest()[:16]

    def to_frame(self) -> pd.DataFrame:
        """One row per code: code, level, parent, title, description."""
        rows = [
            {
                "code": n.code,
                "level": n.level,
                "parent": n.parent,
                "title": n.title,
                "description": n.description,
            }
            for n in self.nodes.values()
        ]
        return pd.DataFrame(rows).sort_values(["code"]).reset_index(drop=True)

    def __repr__(self) -> str:
        counts = ", ".join(f"{lv}-digit: {len(self._by_level[lv])}" for lv in LEVELS)
        return f"NaicsTaxonomy(year={self.year}, {counts})"


def _ensure_chain(nodes: dict[str, NaicsNode], code: str, title: str) -> None:
    while code not in nodes:
        level = 2 if "-" in code else len(code)
        nodes[code] = NaicsNode(code=code, title=title, level=level)
        if level == 2:
            return
        parent = sector_of(code) if level == 3 else code[: level - 1]
        nodes[code].parent = parent
        code = parent


# ---------------------------------------------------------------------------------------------------------------
# file readers
# ---------------------------------------------------------------------------------------------------------------
def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError(path, "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, dtype=str)
        elif suffix in (".csv", ".txt"):
            try:
                df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
            except UnicodeDecodeError:
                df = pd.read_csv(path, dtype=str, encoding="latin-1", keep_default_na=False, na_values=[""])
        else:
            raise InputError(path, f"unsupported file type {suffix!r} (expected .csv or .xlsx)")
    except InputError:
        raise
    except Exception as exc:  # pandas / openpyxl errors on corrupt files
        raise InputError(path, f"cannot read table: {exc}") from exc
    df.columns = [" ".join(str(c).split()) for c in df.columns]
    return df


def _find_column(df: pd.DataFrame, *needles: str, exclude: Sequence[str] = ()) -> str | None:
    for needle in needles:
        for col in df.columns:
            low = col.lower()
            if needle in low and not any(x in low for x in exclude):
                return col
    return None


def _records_from_file(path: Path) -> list[tuple[str, str, str]]:
    df = _read_table(path)
    code_col = _find_column(df, "code", "naics", exclude=("seq",))
    title_col = _find_column(df, "title")
    desc_col = _find_column(df, "description")
    if code_col is None or title_col is None:
        raise InputError(
            path, f"not a NAICS code file: need a code column and a title column, found {list(df.columns)}"
        )
    out = []
    for _, row in df.iterrows():
        code = normalize_code(row[code_col])
        if not code:
            continue
        desc = row[desc_col] if desc_col is not None else ""
        out.append((code, row[title_col], desc))
    return out


def default_data_dir() -> Path | None:
    """Where to look for the official files when no path is given.

    Order: ``$TERRACARBON_EMISSIONS_DATA``; the user cache (``~/.cache/terracarbon/emissions``, where
    :func:`download_naics` puts them); a ``shared/data/emissions`` folder next to a source checkout.
    """
    env = os.environ.get("TERRACARBON_EMISSIONS_DATA")
    if env:
        return Path(env)
    cache = cache_dir()
    if cache.exists() and any(cache.glob("*NAICS*")):
        return cache
    checkout = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "emissions"
    if checkout.exists():
        return checkout
    return None


def cache_dir() -> Path:
    """User cache folder for downloaded files and embedding caches."""
    base = os.environ.get("TERRACARBON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "terracarbon"
    )
    return Path(base) / "emissions"


def download_naics(year: int = 2017, dest: str | Path | None = None, *, url: str | None = None) -> Path:
    """Download the official ``{year}_NAICS_Descriptions.xlsx`` once into ``dest`` (default: user cache).

    Returns the local path; an existing file is reused. ``url`` overrides the Census address (mirrors, tests).
    """
    import requests

    from terracarbon.utils import atomic_path

    if url is None:
        if year not in NAICS_URLS:
            raise ConfigError(f"no download address known for NAICS {year}; known: {sorted(NAICS_URLS)}")
        url = NAICS_URLS[year]
    dest = Path(dest) if dest is not None else cache_dir()
    out = dest / url.rsplit("/", 1)[-1]
    if out.exists():
        return out
    try:
        resp = requests.get(url, timeout=60)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise InputError(
            url, f"download failed ({exc}); download the file yourself and pass its path"
        ) from exc
    with atomic_path(out) as tmp:
        tmp.write_bytes(resp.content)
    _records_from_file(out)  # validates that it is a NAICS file
    return out


def _find_in_dir(folder: Path, year: int) -> list[Path]:
    pats = [
        f"{year}_NAICS_Descriptions.xlsx",
        f"{year}_NAICS_Descriptions.csv",
        f"2-6 digit_{year}_Codes.xlsx",
        f"2-6 digit_{year}_Codes.csv",
        f"6-digit_{year}_Codes.xlsx",
        f"6-digit_{year}_Codes.csv",
    ]
    found = [folder / p for p in pats if (folder / p).exists()]
    # one descriptions file and one code-tree file are enough
    descs = [p for p in found if "Descriptions" in p.name][:1]
    trees = [p for p in found if "Codes" in p.name][:1]
    return descs + trees


def _cached_records(files: Sequence[Path]) -> list[tuple[str, str, str]]:
    """Records of the given Census files, parsed once and cached as JSON in the user cache.

    Keyed by each file's resolved path, size and modification time: reading the official ``.xlsx`` files with
    openpyxl costs seconds, the cached JSON tens of milliseconds (this is most of a one-description CLI call's
    start-up otherwise). An unreadable or stale cache entry is simply re-parsed.
    """
    import json

    parts = []
    for f in files:
        f = Path(f)
        try:
            st = f.stat()
            parts.append(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts = []
            break
    cache_file = None
    if parts:
        key = hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]
        cache_file = cache_dir() / "taxonomy" / f"records-{key}.json"
        if cache_file.exists():
            try:
                return [tuple(r) for r in json.loads(cache_file.read_text(encoding="utf-8"))]
            except (OSError, ValueError):
                pass
    records: list[tuple[str, str, str]] = []
    for f in files:
        records.extend(_records_from_file(Path(f)))
    if cache_file is not None:
        try:
            from terracarbon.utils import atomic_write_text

            cache_file.parent.mkdir(parents=True, exist_ok=True)
            def _s(x) -> str:  # NaN / None mean "empty" to from_records, so they are stored as ""
                return "" if x is None or (isinstance(x, float) and x != x) else str(x)

            clean = [[_s(c), _s(t), _s(d)] for c, t, d in records]
            atomic_write_text(cache_file, json.dumps(clean))
        except OSError:
            pass
    return records


def load_naics(
    path: str | Path | Sequence[str | Path] | None = None,
    *,
    year: int = 2017,
    download: bool = False,
) -> NaicsTaxonomy:
    """Load a NAICS taxonomy from the official Census files.

    ``path`` may be a descriptions file or code-tree file (csv/xlsx), several of them, or a folder holding them
    (``{year}_NAICS_Descriptions.*``, ``2-6 digit_{year}_Codes.*``). With no path the default data folder is used
    (:func:`default_data_dir`); with ``download=True`` a missing file is fetched once from census.gov and cached.
    Records from several files are merged: the first file that gives a description wins.
    """
    if path is None:
        folder = default_data_dir()
        files = _find_in_dir(folder, year) if folder is not None else []
        if not files:
            if not download:
                raise InputError(
                    folder or "NAICS data",
                    f"no NAICS {year} files found; pass a path, set TERRACARBON_EMISSIONS_DATA or use download=True",
                )
            files = [download_naics(year)]
    elif isinstance(path, (str, Path)):
        p = Path(path)
        if p.is_dir():
            files = _find_in_dir(p, year)
            if not files:
                raise InputError(p, f"folder holds no NAICS {year} descriptions or code files")
        else:
            files = [p]
    else:
        files = [Path(x) for x in path]
    records = _cached_records(files)
    return NaicsTaxonomy.from_records(
        records, year=year, sources=[str(f) for f in files], source_name=str(files[0]) if files else None
    )


def load_labelled(
    path: str | Path,
    *,
    text_column: str | None = None,
    code_column: str | None = None,
    taxonomy: NaicsTaxonomy | None = None,
) -> pd.DataFrame:
    """Read labelled (description, NAICS code) rows, e.g. the official NAICS index file.

    Columns default to the index-file names (``INDEX ITEM DESCRIPTION`` / ``NAICS17`` or ``NAICS22``) or any
    column named like ``description``/``text`` and ``code``/``naics``. Returns a frame with ``text`` and ``code``.
    Rows with an empty text or a code not in ``taxonomy`` (when given) are dropped; none left is an error.
    """
    path = Path(path)
    df = _read_table(path)
    tcol = text_column or _find_column(
        df, "index item description", "description", "desc", "text", "activity"
    )
    ccol = code_column or _find_column(df, "naics", "code", exclude=("title",))
    for want, col in (("text", tcol), ("code", ccol)):
        if col is None or col not in df.columns:
            raise InputError(
                path, f"no {want} column {col or ''} (columns: {list(df.columns)})".replace("  ", " ")
            )
    out = pd.DataFrame(
        {"text": df[tcol].fillna("").astype(str).str.strip(), "code": df[ccol].map(normalize_code)}
    )
    out = out[(out.text != "") & (out.code != "")]
    if taxonomy is not None:
        out = out[out.code.isin(taxonomy.nodes)]
    if out.empty:
        raise InputError(path, "no usable labelled rows (empty text or codes not in the taxonomy)")
    return out.reset_index(drop=True)


def concordance(
    old: NaicsTaxonomy, new: NaicsTaxonomy, *, level: int = 6, min_score: float = 0.6
) -> pd.DataFrame:
    """Match the codes of two NAICS editions (e.g. 2017 -> 2022) from the code trees themselves.

    Each ``old`` code at ``level`` is ``unchanged`` (same code, same title), ``retitled`` (same code, other title),
    ``matched`` (code gone; best title match among new codes of the same sector, with ``score`` >= ``min_score``)
    or ``dropped``. New codes no old code points at are listed as ``new``. This is a title-based approximation; the
    Census Bureau's official concordance tables are authoritative where available.
    """
    rows = []
    new_codes = new.codes(level)
    new_titles = {c: new[c].title.lower() for c in new_codes}
    targeted: set[str] = set()
    for code in old.codes(level):
        t_old = old[code].title
        if code in new.nodes:
            status = "unchanged" if t_old.lower() == new[code].title.lower() else "retitled"
            rows.append((code, t_old, code, new[code].title, status, 1.0))
            targeted.add(code)
            continue
        sector = sector_of(code)
        cands = [c for c in new_codes if sector_of(c) == sector and c not in old.nodes] or [
            c for c in new_codes if sector_of(c) == sector
        ]
        best, score = None, 0.0
        for c in cands:
            s = difflib.SequenceMatcher(None, t_old.lower(), new_titles[c]).ratio()
            if s > score:
                best, score = c, s
        if best is not None and score >= min_score:
            rows.append((code, t_old, best, new[best].title, "matched", round(score, 3)))
            targeted.add(best)
        else:
            rows.append((code, t_old, None, None, "dropped", round(score, 3)))
    for c in new_codes:
        if c not in targeted and c not in old.nodes:
            rows.append((None, None, c, new[c].title, "new", 0.0))
    oy, ny = old.year or "old", new.year or "new"
    return pd.DataFrame(
        rows, columns=[f"code_{oy}", f"title_{oy}", f"code_{ny}", f"title_{ny}", "status", "score"]
    )
