"""Resumable, polite miner of the Hugging Face Hub model listing into SQLite.

It replicates the extraction step of the Hugging Face carbon-footprint mining study (Castaño et al.,
"Exploring the Carbon Footprint of Hugging Face's ML Models: A Repository Mining Study", ESEM 2023,
arXiv:2305.11164): list models with their card data, extract ``co2_eq_emissions`` and its context
fields, datasets, library, pipeline tag / domain, downloads, likes, dates, size and the evaluation
metrics of ``model-index``.

How it talks to the Hub. The listing endpoint ``GET {endpoint}/api/models`` is requested through
huggingface_hub's HTTP session (``huggingface_hub.utils.get_session``, ``build_hf_headers``,
``hf_raise_for_status``) with ``expand=`` fields, and each item is parsed with
:class:`huggingface_hub.hf_api.ModelInfo` as ``HfApi.list_models`` does. Pages are followed through
the ``Link: <...>; rel="next"`` header exactly like ``huggingface_hub.utils._pagination.paginate``,
but page by page so that the cursor can be persisted. ``endpoint`` defaults to ``HF_ENDPOINT`` (any
Hub-compatible server or mirror) and then to ``https://huggingface.co``.

Resumable. Each page's rows and the URL of the next page are committed in *one* SQLite transaction,
so a run killed at any point restarts from the first page not yet stored; rows are keyed by model
id (``INSERT ... ON CONFLICT DO UPDATE``), so every model is stored exactly once.

Polite. A minimum interval between requests; HTTP 429 honours ``Retry-After`` (seconds or HTTP
date, capped); 5xx, timeouts and connection errors are retried with exponential backoff and
jitter; after ``max_retries`` the run stops with :class:`HubError` and can simply be rerun.

Card texts. The study read "CO2e reported" and the hardware from the card metadata *or* the card's
Markdown (``HFPreprocessing.ipynb`` cell 6, ``extract_context_info``). :func:`fetch_card_texts`
downloads each model's ``README.md`` (``{endpoint}/{model}/resolve/main/README.md``), keeps only
what those rules read (the ``Carbon Emitted:``, ``Hardware Type:`` and ``Compute Region:`` values,
via :func:`terracarbon.footprint.classify.parse_card_text`) in table ``card_texts``, and is
resumable the same way (one row per model; a rerun asks only for the missing ones).

Whole Hub. ``filter_tag=None`` (CLI ``mine --all-models``) lists every model — reporting or not,
the study's denominator — with the same cursor checkpoint in table ``state``.

Schema (table ``models``): ``model_id`` (PK), ``author``, ``created_at``, ``last_modified``,
``downloads``, ``likes``, ``library_name``, ``pipeline_tag``, ``domain``, ``tags`` (JSON),
``datasets`` (JSON), ``co2_reported`` (0/1), ``co2_g``, ``co2_status`` (ok/malformed/absent),
``co2_note``, ``co2_raw`` (JSON), ``source``, ``training_type``, ``geographical_location``,
``hardware_used``, ``size_bytes`` (weights: safetensors parameters x dtype width, else the
repo's ``usedStorage``), ``size_source``, ``storage_bytes``, ``n_parameters``, ``metrics`` (JSON), ``auto`` (AutoTrain/AutoNLP
tag), ``card_error``, ``mined_at``. Table ``state`` holds the cursor; ``pages`` logs fetched pages.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin

from ._compat import ConfigError, InputError, TerracarbonError
from .normalise import domain_of, extract_metrics, normalise_co2

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"

#: ``expand`` fields requested from the listing (all documented ExpandModelProperty values)
EXPAND_FIELDS: tuple[str, ...] = (
    "author",
    "cardData",
    "createdAt",
    "downloads",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "safetensors",
    "tags",
    "usedStorage",
)

#: metadata tag the Hub sets on models whose card declares ``co2_eq_emissions`` (listed under
#: "Metadata" by ``/api/models-tags-by-type``; huggingface_hub's own test suite lists models with
#: ``filter="co2_eq_emissions"``)
EMISSIONS_TAG = "co2_eq_emissions"

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    author TEXT,
    created_at TEXT,
    last_modified TEXT,
    downloads INTEGER,
    likes INTEGER,
    library_name TEXT,
    pipeline_tag TEXT,
    domain TEXT,
    tags TEXT,
    datasets TEXT,
    co2_reported INTEGER NOT NULL,
    co2_g REAL,
    co2_status TEXT NOT NULL,
    co2_note TEXT,
    co2_raw TEXT,
    source TEXT,
    training_type TEXT,
    geographical_location TEXT,
    hardware_used TEXT,
    size_bytes INTEGER,
    size_source TEXT,
    storage_bytes INTEGER,
    n_parameters INTEGER,
    metrics TEXT,
    auto INTEGER,
    card_error TEXT,
    mined_at TEXT
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id TEXT PRIMARY KEY, size_bytes INTEGER, status TEXT NOT NULL, fetched_at TEXT
);
CREATE TABLE IF NOT EXISTS card_texts (
    model_id TEXT PRIMARY KEY, status TEXT NOT NULL, co2_text TEXT, hardware_text TEXT,
    location_text TEXT, n_chars INTEGER, fetched_at TEXT
);
CREATE TABLE IF NOT EXISTS pages (
    n INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT, n_items INTEGER, fetched_at TEXT
);
"""

MODEL_COLUMNS = (
    "model_id",
    "author",
    "created_at",
    "last_modified",
    "downloads",
    "likes",
    "library_name",
    "pipeline_tag",
    "domain",
    "tags",
    "datasets",
    "co2_reported",
    "co2_g",
    "co2_status",
    "co2_note",
    "co2_raw",
    "source",
    "training_type",
    "geographical_location",
    "hardware_used",
    "size_bytes",
    "size_source",
    "storage_bytes",
    "n_parameters",
    "metrics",
    "auto",
    "card_error",
    "mined_at",
)


class HubError(TerracarbonError):
    """The Hub (or mirror) kept failing after all retries; rerun to resume."""


@dataclass
class MineResult:
    """Outcome of :func:`mine_hub`."""

    db_path: Path
    endpoint: str
    models_stored: int  # rows in the database after the run
    models_seen: int  # items processed in this run
    pages: int  # pages fetched in this run
    complete: bool  # the listing was exhausted (no next page)
    resumed: bool  # the run continued a previous one
    retries: int = 0
    waited_s: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)
    co2_counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------
def _json(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v, sort_keys=True, default=str)


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


#: bytes per parameter of safetensors dtypes
DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def _size(safetensors: Mapping[str, Any], used_storage: Any) -> dict[str, Any]:
    """Model size in bytes: weights from safetensors dtype counts, else the repo's storage.

    The study measured the size of ``pytorch_model.bin``; the weights' byte count (parameters x
    dtype width) is the listing-only equivalent. ``usedStorage`` (every file and format in the
    repo) is the fallback and is kept in ``storage_bytes``.
    """
    storage = _int(used_storage)
    params = safetensors.get("parameters") if isinstance(safetensors, Mapping) else None
    if isinstance(params, Mapping) and params:
        total = 0
        for dtype, n in params.items():
            width = DTYPE_BYTES.get(str(dtype).upper())
            count = _int(n)
            if width is None or count is None:
                total = None
                break
            total += width * count
        if total:
            return {"size_bytes": total, "size_source": "safetensors", "storage_bytes": storage}
    if storage:
        return {"size_bytes": storage, "size_source": "usedStorage", "storage_bytes": storage}
    return {"size_bytes": None, "size_source": None, "storage_bytes": storage}


def parse_model_item(item: Mapping[str, Any], mined_at: str | None = None) -> dict[str, Any] | None:
    """Turn one listing item (the Hub's JSON) into a ``models`` row. ``None`` if it has no id.

    Broken card data (not a mapping, unparsable ``model-index``, malformed ``co2_eq_emissions``) is
    recorded in ``card_error`` / ``co2_status`` / ``co2_note`` instead of dropping the model.
    """
    if not isinstance(item, Mapping):
        return None
    model_id = item.get("id") or item.get("modelId")
    if not isinstance(model_id, str) or not model_id:
        return None
    card_error = None
    info = None
    try:
        from huggingface_hub.hf_api import ModelInfo

        data = dict(item)
        data.setdefault("siblings", None)
        info = ModelInfo(**data)
    except Exception as exc:  # noqa: BLE001 - real cards break the parser in many ways
        card_error = f"ModelInfo: {type(exc).__name__}: {exc}"[:500]
    card = item.get("cardData")
    if card is not None and not isinstance(card, Mapping):
        card_error = card_error or f"cardData is {type(card).__name__}, not a mapping"
    co2 = normalise_co2(card)
    if co2["co2_status"] == "absent" and co2["co2_note"] and not card_error:
        card_error = co2["co2_note"]
    tags = item.get("tags") if isinstance(item.get("tags"), list) else []
    datasets: list[str] = []
    if isinstance(card, Mapping):
        ds = card.get("datasets")
        if isinstance(ds, str):
            datasets = [ds]
        elif isinstance(ds, list):
            datasets = [str(d) for d in ds if d is not None]
    if not datasets:
        datasets = [t.split(":", 1)[1] for t in tags if isinstance(t, str) and t.startswith("dataset:")]
    safetensors = item.get("safetensors") if isinstance(item.get("safetensors"), Mapping) else {}
    pipeline_tag = item.get("pipeline_tag")
    library = item.get("library_name")
    if library is None and isinstance(card, Mapping):
        library = card.get("library_name")
    created = getattr(info, "created_at", None) if info is not None else None
    modified = getattr(info, "last_modified", None) if info is not None else None
    row = {
        "model_id": model_id,
        "author": item.get("author") or (model_id.split("/", 1)[0] if "/" in model_id else None),
        "created_at": _iso(created or item.get("createdAt")),
        "last_modified": _iso(modified or item.get("lastModified")),
        "downloads": _int(item.get("downloads")),
        "likes": _int(item.get("likes")),
        "library_name": library if isinstance(library, str) else None,
        "pipeline_tag": pipeline_tag if isinstance(pipeline_tag, str) else None,
        "domain": domain_of(pipeline_tag, tags),
        "tags": _json(tags),
        "datasets": _json(datasets),
        "co2_reported": int(co2["co2_status"] != "absent"),
        "co2_g": co2["co2_g"],
        "co2_status": co2["co2_status"],
        "co2_note": co2["co2_note"],
        "co2_raw": _json(co2["co2_raw"]),
        "source": co2["source"],
        "training_type": co2["training_type"],
        "geographical_location": co2["geographical_location"],
        "hardware_used": co2["hardware_used"],
        **_size(safetensors, item.get("usedStorage")),
        "n_parameters": _int(safetensors.get("total")),
        "metrics": _json(extract_metrics(card)),
        "auto": int(any(t in ("autotrain", "autonlp") for t in tags if isinstance(t, str))),
        "card_error": card_error,
        "mined_at": mined_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return row


# --------------------------------------------------------------------------------------------
# database
# --------------------------------------------------------------------------------------------
def open_db(db_path: str | Path) -> sqlite3.Connection:
    """Open (and create) a miner database; raise :class:`InputError` if it is not one."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise InputError(path, f"not a terracarbon miner database ({exc})") from exc
    return con


def _get_state(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM state").fetchall())


def _upsert(con: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> None:
    cols = ", ".join(MODEL_COLUMNS)
    marks = ", ".join("?" for _ in MODEL_COLUMNS)
    updates = ", ".join(f"{c}=excluded.{c}" for c in MODEL_COLUMNS if c != "model_id")
    con.executemany(
        f"INSERT INTO models ({cols}) VALUES ({marks}) ON CONFLICT(model_id) DO UPDATE SET {updates}",
        [tuple(r[c] for c in MODEL_COLUMNS) for r in rows],
    )


def read_models(db_path: str | Path):
    """Read the ``models`` table of a miner database into a pandas DataFrame."""
    import pandas as pd

    path = Path(db_path)
    if not path.is_file():
        raise InputError(path, "miner database not found")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            has_texts = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='card_texts'"
            ).fetchone()
            if has_texts:
                query = (
                    "SELECT m.*, t.status AS card_text_status, t.co2_text AS card_co2_text, "
                    "t.hardware_text AS card_hardware_text, t.location_text AS card_location_text "
                    "FROM models m LEFT JOIN card_texts t USING (model_id) ORDER BY m.model_id"
                )
            else:
                query = "SELECT * FROM models ORDER BY model_id"
            df = pd.read_sql_query(query, con)
        finally:
            con.close()
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise InputError(path, f"not a terracarbon miner database ({exc})") from exc
    return df


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------
def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class _Fetcher:
    """GET with the politeness rules: min interval, Retry-After, backoff, bounded retries."""

    def __init__(
        self,
        *,
        token: str | bool | None,
        timeout: float,
        max_retries: int,
        backoff_s: float,
        max_wait_s: float,
        min_interval_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from huggingface_hub.utils import build_hf_headers, get_session

        self.session = get_session()
        self.headers = build_hf_headers(token=token if token else False, library_name="terracarbon")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.min_interval_s = min_interval_s
        self.sleep = sleep
        self.retries = 0
        self.waited_s = 0.0
        self.status_counts: dict[str, int] = {}
        self._last = 0.0

    def _wait(self, seconds: float) -> None:
        seconds = min(max(0.0, seconds), self.max_wait_s)
        if seconds > 0:
            self.waited_s += seconds
            self.sleep(seconds)

    def get(self, url: str, accept: tuple[int, ...] = ()):
        import httpx
        from huggingface_hub.errors import OfflineModeIsEnabled
        from huggingface_hub.utils import hf_raise_for_status

        last_problem = ""
        for attempt in range(self.max_retries + 1):
            gap = self.min_interval_s - (time.monotonic() - self._last)
            if gap > 0:
                self.sleep(gap)
            self._last = time.monotonic()
            try:
                r = self.session.get(url, headers=self.headers, timeout=self.timeout, follow_redirects=True)
            except OfflineModeIsEnabled as exc:
                raise ConfigError(
                    f"cannot reach {url}: HF_HUB_OFFLINE is set; unset it to mine the Hub"
                ) from exc
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
                self.status_counts[kind] = self.status_counts.get(kind, 0) + 1
                last_problem = f"{kind} error ({type(exc).__name__})"
            else:
                code = r.status_code
                self.status_counts[str(code)] = self.status_counts.get(str(code), 0) + 1
                if code in accept:
                    return r
                if code == 429 or code >= 500:
                    last_problem = f"HTTP {code}"
                    if attempt < self.max_retries:
                        self.retries += 1
                        ra = (
                            _retry_after_seconds(r.headers.get("Retry-After")) if code in (429, 503) else None
                        )
                        self._wait(ra if ra is not None else self._backoff(attempt))
                        continue
                    break
                try:
                    hf_raise_for_status(r)
                except Exception as exc:  # noqa: BLE001 - 4xx other than 429: not retryable
                    raise HubError(f"{url}: HTTP {code} ({exc})") from exc
                return r
            if attempt < self.max_retries:
                self.retries += 1
                self._wait(self._backoff(attempt))
        raise HubError(
            f"{url}: giving up after {self.max_retries + 1} attempts ({last_problem}); "
            "rerun the same command to resume"
        )

    def _backoff(self, attempt: int) -> float:
        return self.backoff_s * (2**attempt) * (1.0 + 0.25 * random.random())


def _first_url(endpoint: str, *, filter_tag: str | None, search: str | None, sort: str | None) -> str:
    params: list[tuple[str, str]] = []
    if filter_tag:
        params.append(("filter", filter_tag))
    if search:
        params.append(("search", search))
    if sort:
        params.append(("sort", sort))
        params.append(("direction", "-1"))
    params += [("expand", f) for f in EXPAND_FIELDS]
    return f"{endpoint.rstrip('/')}/api/models?{urlencode(params)}"


def resolve_endpoint(endpoint: str | None) -> str:
    """``endpoint`` or ``$HF_ENDPOINT`` or the public Hub, without a trailing slash."""
    ep = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    if not ep.startswith(("http://", "https://")):
        raise ConfigError(f"Hub endpoint must be an http(s) URL, got {ep!r}")
    return ep.rstrip("/")


# --------------------------------------------------------------------------------------------
# the miner
# --------------------------------------------------------------------------------------------
def mine_hub(
    db_path: str | Path,
    *,
    endpoint: str | None = None,
    limit: int | None = None,
    filter_tag: str | None = EMISSIONS_TAG,
    search: str | None = None,
    sort: str | None = None,
    token: str | None = None,
    restart: bool = False,
    timeout: float = 30.0,
    max_retries: int = 6,
    backoff_s: float = 1.0,
    max_wait_s: float = 120.0,
    min_interval_s: float = 0.5,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> MineResult:
    """Mine the Hub's model listing into the SQLite database ``db_path``; rerunning resumes.

    Args:
        db_path: SQLite file (created if missing).
        endpoint: Hub URL; default ``$HF_ENDPOINT`` or ``https://huggingface.co``.
        limit: stop once the database holds this many models (``None``: the whole listing).
        filter_tag: listing filter; default ``"co2_eq_emissions"`` (models whose card declares
            emissions, as the Hub tags them). ``None`` lists every model (needed for the share of
            reporting models among all models; large).
        search, sort: passed to the listing (``sort`` descending).
        token: optional Hub token (none is read from disk).
        restart: forget the stored cursor and start from the first page (rows are upserted).
        timeout: per-request timeout in seconds.
        max_retries, backoff_s, max_wait_s: retry policy for 429/5xx/timeouts (``Retry-After``
            honoured, every wait capped at ``max_wait_s``).
        min_interval_s: minimum gap between requests.
        progress: show a rich progress bar.
        sleep: the sleep function (tests inject a fast one).

    Returns:
        :class:`MineResult`.

    Raises:
        ConfigError: the database was started with a different endpoint/query (use ``restart``).
        HubError: the server kept failing; what was stored so far is kept and a rerun resumes.
    """
    ep = resolve_endpoint(endpoint)
    if limit is not None and limit <= 0:
        raise ConfigError(f"limit must be positive, got {limit}")
    first = _first_url(ep, filter_tag=filter_tag, search=search, sort=sort)
    fingerprint = hashlib.sha256(first.encode()).hexdigest()[:16]
    con = open_db(db_path)
    try:
        state = _get_state(con)
        resumed = False
        if restart or not state:
            with con:
                con.execute("DELETE FROM state")
                con.executemany(
                    "INSERT INTO state(key, value) VALUES (?, ?)",
                    [("query", first), ("fingerprint", fingerprint), ("next_url", first), ("done", "0")],
                )
            state = _get_state(con)
        elif state.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{db_path}: database was mined with a different query ({state.get('query')}); "
                "use restart=True (--restart) or another --db"
            )
        else:
            resumed = True
        fetcher = _Fetcher(
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_wait_s=max_wait_s,
            min_interval_s=min_interval_s,
            sleep=sleep,
        )
        n_stored = con.execute("SELECT COUNT(*) FROM models").fetchone()[0]
        seen = pages = 0
        url: str | None = state.get("next_url") if state.get("done") != "1" else None
        from terracarbon.utils import progress as make_progress

        with make_progress(disable=not progress) as bar:
            task = bar.add_task("mining Hub models", total=limit, completed=n_stored)
            while url and (limit is None or n_stored < limit):
                r = fetcher.get(url)
                try:
                    items = r.json()
                except ValueError as exc:
                    raise HubError(f"{url}: response is not JSON ({exc})") from exc
                if not isinstance(items, list):
                    raise HubError(f"{url}: expected a JSON list of models, got {type(items).__name__}")
                next_url = r.links.get("next", {}).get("url")
                if next_url:
                    next_url = urljoin(url, next_url)  # mirrors may send relative links
                now = datetime.now(timezone.utc).isoformat(timespec="seconds")
                rows = []
                for item in items:
                    row = parse_model_item(item, mined_at=now)
                    if row is None:
                        log.warning("skipping listing item without id from %s", url)
                        continue
                    rows.append(row)
                truncated = False
                if limit is not None:
                    known = (
                        {
                            r_[0]
                            for r_ in con.execute(
                                f"SELECT model_id FROM models WHERE model_id IN ({','.join('?' * len(rows))})",
                                [x["model_id"] for x in rows],
                            )
                        }
                        if rows
                        else set()
                    )
                    new_ids = [x for x in rows if x["model_id"] not in known]
                    room = limit - n_stored
                    if len(new_ids) > room:
                        keep = {x["model_id"] for x in new_ids[:room]} | known
                        rows = [x for x in rows if x["model_id"] in keep]
                        truncated = True
                with con:  # one transaction: the page's rows + the cursor
                    _upsert(con, rows)
                    cursor = url if truncated else next_url
                    con.execute("UPDATE state SET value=? WHERE key='next_url'", (cursor or "",))
                    con.execute(
                        "UPDATE state SET value=? WHERE key='done'",
                        ("0" if (truncated or next_url) else "1",),
                    )
                    con.execute(
                        "INSERT INTO pages(url, n_items, fetched_at) VALUES (?, ?, ?)", (url, len(items), now)
                    )
                pages += 1
                seen += len(rows)
                n_stored = con.execute("SELECT COUNT(*) FROM models").fetchone()[0]
                bar.update(task, completed=n_stored)
                url = None if truncated else next_url
        state = _get_state(con)
        co2_counts = dict(
            con.execute("SELECT co2_status, COUNT(*) FROM models GROUP BY co2_status").fetchall()
        )
        return MineResult(
            db_path=Path(db_path),
            endpoint=ep,
            models_stored=n_stored,
            models_seen=seen,
            pages=pages,
            complete=state.get("done") == "1",
            resumed=resumed,
            retries=fetcher.retries,
            waited_s=fetcher.waited_s,
            status_counts=fetcher.status_counts,
            co2_counts=co2_counts,
        )
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# dataset sizes (the study's ``datasets_size``)
# --------------------------------------------------------------------------------------------
def _dataset_size(card: Any) -> int | None:
    """``dataset_info.dataset_size`` of a dataset card (summed over configurations when a list)."""
    if not isinstance(card, Mapping):
        return None
    info = card.get("dataset_info")
    infos = info if isinstance(info, list) else [info]
    sizes = [_int(i.get("dataset_size")) for i in infos if isinstance(i, Mapping)]
    sizes = [x for x in sizes if x is not None]
    return sum(sizes) if sizes else None


def fetch_dataset_sizes(
    db_path: str | Path,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    timeout: float = 30.0,
    max_retries: int = 6,
    backoff_s: float = 1.0,
    max_wait_s: float = 120.0,
    min_interval_s: float = 0.5,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Look up the size of every dataset used by an emission-reporting model (resumable).

    As in the study, a dataset's size is ``cardData.dataset_info.dataset_size`` from
    ``GET {endpoint}/api/datasets/{id}`` (summed over configurations when the card lists several).
    Each answer — a size, ``no size`` or ``not found`` — is stored in table ``datasets``, so a
    rerun only asks for the ones still missing. Returns counts per status.
    """
    ep = resolve_endpoint(endpoint)
    con = open_db(db_path)
    try:
        wanted: set[str] = set()
        for (ds,) in con.execute("SELECT datasets FROM models WHERE co2_reported = 1"):
            for d in json.loads(ds or "[]"):
                if isinstance(d, str) and d.strip():
                    wanted.add(d.strip())
        known = {r[0] for r in con.execute("SELECT dataset_id FROM datasets")}
        todo = sorted(wanted - known)
        fetcher = _Fetcher(
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_wait_s=max_wait_s,
            min_interval_s=min_interval_s,
            sleep=sleep,
        )
        from terracarbon.utils import progress as make_progress

        with make_progress(disable=not progress) as bar:
            task = bar.add_task("dataset sizes", total=len(todo))
            for ds in todo:
                url = f"{ep}/api/datasets/{quote(ds, safe='/')}?expand=cardData"
                r = fetcher.get(url, accept=(400, 401, 403, 404))
                size = None
                if r.status_code != 200:
                    status = "not found" if r.status_code == 404 else f"HTTP {r.status_code}"
                else:
                    try:
                        size = _dataset_size(r.json().get("cardData"))
                    except (ValueError, AttributeError):
                        size = None
                    status = "ok" if size is not None else "no size"
                with con:
                    con.execute(
                        "INSERT OR REPLACE INTO datasets(dataset_id, size_bytes, status, fetched_at) "
                        "VALUES (?, ?, ?, ?)",
                        (ds, size, status, datetime.now(timezone.utc).isoformat(timespec="seconds")),
                    )
                bar.advance(task)
        return dict(con.execute("SELECT status, COUNT(*) FROM datasets GROUP BY status").fetchall())
    finally:
        con.close()


def fetch_card_texts(
    db_path: str | Path,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    which: str = "all",
    limit: int | None = None,
    timeout: float = 30.0,
    max_retries: int = 6,
    backoff_s: float = 1.0,
    max_wait_s: float = 120.0,
    min_interval_s: float = 0.5,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Read the card text of mined models for the study's text rules (resumable, polite).

    Args:
        db_path: a miner database (:func:`mine_hub`).
        which: ``"all"`` (every model without a stored card text, as the study parsed every card)
            or ``"unreported"`` (only models whose metadata has no usable ``co2_eq_emissions``
            or no ``hardware_used`` — the only ones the text can change).
        limit: fetch at most this many cards in this run.
        Other arguments as :func:`mine_hub`.

    Returns:
        Rows of table ``card_texts`` per status (``ok`` / ``no card`` / ``HTTP <code>``).
    """
    from .classify import parse_card_text

    if which not in ("all", "unreported"):
        raise ConfigError(f"which must be 'all' or 'unreported', got {which!r}")
    ep = resolve_endpoint(endpoint)
    con = open_db(db_path)
    try:
        where = "" if which == "all" else " AND (m.co2_status != 'ok' OR m.hardware_used IS NULL)"
        todo = [
            r[0]
            for r in con.execute(
                "SELECT m.model_id FROM models m LEFT JOIN card_texts t USING (model_id) "
                f"WHERE t.model_id IS NULL{where} ORDER BY m.model_id"
            )
        ]
        if limit is not None:
            todo = todo[: max(0, limit)]
        fetcher = _Fetcher(
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_wait_s=max_wait_s,
            min_interval_s=min_interval_s,
            sleep=sleep,
        )
        from terracarbon.utils import progress as make_progress

        with make_progress(disable=not progress) as bar:
            task = bar.add_task("card texts", total=len(todo))
            for model_id in todo:
                url = f"{ep}/{quote(model_id, safe='/')}/resolve/main/README.md"
                r = fetcher.get(url, accept=(401, 403, 404))
                parsed = {"co2_eq_emissions": None, "hardware_used": None, "geographical_location": None}
                n_chars = None
                if r.status_code == 200:
                    text = r.text
                    n_chars = len(text)
                    parsed = parse_card_text(text)
                    status = "ok"
                else:
                    status = "no card" if r.status_code == 404 else f"HTTP {r.status_code}"
                with con:
                    con.execute(
                        "INSERT OR REPLACE INTO card_texts(model_id, status, co2_text, hardware_text, "
                        "location_text, n_chars, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            model_id,
                            status,
                            parsed["co2_eq_emissions"],
                            parsed["hardware_used"],
                            parsed["geographical_location"],
                            n_chars,
                            datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        ),
                    )
                bar.advance(task)
        return dict(con.execute("SELECT status, COUNT(*) FROM card_texts GROUP BY status").fetchall())
    finally:
        con.close()


def read_dataset_sizes(db_path: str | Path) -> dict[str, int]:
    """``{dataset_id: size_bytes}`` of the datasets with a known size in a miner database."""
    con = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT dataset_id, size_bytes FROM datasets WHERE size_bytes IS NOT NULL")
        return {d: int(b) for d, b in rows}
    except sqlite3.DatabaseError:
        return {}
    finally:
        con.close()
