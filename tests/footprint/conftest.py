"""A local Hub look-alike (``/api/models`` with Link-header pagination and faults) and its fixtures.

The server speaks the listing endpoint as the real Hub does: ``GET /api/models?filter=..&expand=..``
returns a JSON list of model objects holding ``_id``, ``id`` and the requested ``expand`` fields
(``cardData`` as parsed YAML, ``tags``, ``downloads``...), and a ``Link: <next>; rel="next"`` header
with a ``cursor`` parameter while more pages remain. Faults are injected per page: HTTP 429 with
``Retry-After``, HTTP 500, a response slower than the client's timeout, and broken cards.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import pytest

DOMAIN_PIPELINE = {
    "NLP": "text-classification",
    "Computer Vision": "image-classification",
    "Audio": "automatic-speech-recognition",
    "Multimodal": "image-to-text",
}


def _nan(v: str):
    return None if v in ("", "nan", "NaN", "Not Specified") else v


def item_from_hfco2(row: dict, i: int) -> dict:
    """A real-shaped Hub listing item built from one HFCO2.csv row (the study's mined record)."""
    libs = ast.literal_eval(row["library_name"]) if row["library_name"].startswith("[") else []
    datasets = ast.literal_eval(row["datasets"]) if row["datasets"].startswith("[") else []
    datasets = [d for d in datasets if d]
    auto = row["auto"] in ("True", "1")
    metrics_raw = row["performance_metrics"].replace("nan", "None")
    metrics = {k: v for k, v in ast.literal_eval(metrics_raw).items() if v is not None}
    co2 = float(row["co2_eq_emissions"])
    ctx = {
        "source": _nan(row["source"]),
        "training_type": _nan(row["training_type"]),
        "geographical_location": _nan(row["geographical_location"]),
        "hardware_used": _nan(row["environment"]),
    }
    if i % 5 == 0 and not any(ctx.values()):
        co2_field: object = co2  # plain number, as older cards have it
    else:
        co2_field = {"emissions": co2, **{k: v for k, v in ctx.items() if v}}
    card: dict = {"co2_eq_emissions": co2_field}
    if datasets:
        card["datasets"] = datasets
    if metrics:
        card["model-index"] = [
            {
                "name": row["modelId"],
                "results": [
                    {
                        "task": {"type": "text-classification", "name": "Text Classification"},
                        "dataset": {"name": datasets[0] if datasets else "unknown", "type": "unknown"},
                        "metrics": [{"type": k, "value": v, "name": k.upper()} for k, v in metrics.items()],
                    }
                ],
            }
        ]
    tags = [*libs, *(["autotrain"] if auto else []), *[f"dataset:{d}" for d in datasets], "co2_eq_emissions"]
    tags.append("region:us")
    size = _nan(row["size"])
    return {
        "_id": hashlib.md5(row["modelId"].encode()).hexdigest()[:24],
        "id": row["modelId"],
        "author": row["modelId"].split("/")[0] if "/" in row["modelId"] else None,
        "downloads": int(row["downloads"]),
        "likes": int(row["likes"]),
        "library_name": "transformers" if "transformers" in libs else (libs[0] if libs else None),
        "pipeline_tag": DOMAIN_PIPELINE.get(row["domain"]),
        "tags": tags,
        "createdAt": f"{row['created_at']}T00:00:00.000Z",
        "lastModified": f"{row['created_at']}T12:00:00.000Z",
        "cardData": card,
        "usedStorage": int(float(size)) if size else None,
    }


def synthetic_items(n: int, seed: int = 0) -> list[dict]:
    """Seeded real-shaped items: reporting and non-reporting models, and a few broken cards."""
    import random

    rng = random.Random(seed)
    items = []
    for i in range(n):
        mid = f"org{i % 7}/model-{i:04d}"
        reporting = i % 3 != 2
        card: dict = {"license": "apache-2.0", "datasets": [f"ds{i % 4}"]}
        tags = ["transformers", "pytorch", f"dataset:ds{i % 4}"]
        if reporting:
            card["co2_eq_emissions"] = {
                "emissions": round(rng.lognormvariate(3, 2), 4),
                "source": rng.choice(["AutoTrain", "codecarbon", None]),
                "training_type": rng.choice(["fine-tuning", "pretraining", None]),
                "geographical_location": rng.choice(["USA", "Eemshaven, Netherlands", None]),
                "hardware_used": rng.choice(["1 x A100", None]),
            }
            card["co2_eq_emissions"] = {k: v for k, v in card["co2_eq_emissions"].items() if v is not None}
            tags.append("co2_eq_emissions")
        items.append(
            {
                "_id": f"{i:024x}",
                "id": mid,
                "author": mid.split("/")[0],
                "downloads": rng.randint(0, 5000),
                "likes": rng.randint(0, 20),
                "library_name": "transformers",
                "pipeline_tag": rng.choice(["text-classification", "image-classification", "translation"]),
                "tags": tags,
                "createdAt": f"202{1 + i % 3}-0{1 + i % 9}-15T10:00:00.000Z",
                "lastModified": "2023-06-01T00:00:00.000Z",
                "cardData": card,
                "usedStorage": rng.randint(10**6, 10**9),
                "safetensors": {"parameters": {"F32": 1000 + i}, "total": 1000 + i},
            }
        )
    # broken cards, as found on the real Hub
    items[0]["cardData"]["co2_eq_emissions"] = "lots of CO2"
    items[1]["cardData"]["co2_eq_emissions"] = "0.5 kg"
    items[3]["cardData"] = "---\nthis: is: not: yaml"
    items[4]["cardData"]["co2_eq_emissions"] = {"source": "codecarbon"}
    items[4]["cardData"]["model-index"] = [{"results": "broken"}]
    return items


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 speaking the Hub's ``/api/models`` listing."""

    def __init__(self, items: list[dict], page_size: int = 10, page_delay_s: float = 0.0) -> None:
        self.items = items
        self.page_size = page_size
        self.page_delay_s = page_delay_s
        self.faults: dict[int, list[str]] = {}  # cursor -> faults consumed one per request
        self.requests: list[tuple[str, str]] = []  # (path+query, outcome)
        self.retry_after = "1"
        self.datasets: dict[str, dict] = {}  # dataset id -> cardData
        self.dataset_faults: dict[str, list[str]] = {}
        self.readmes: dict[str, str] = {}  # model id -> README.md text
        self.readme_faults: dict[str, list[str]] = {}
        self.slow_s = 1.0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                hub._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # client hung up after a timeout
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h, code: int, body: bytes, headers: dict | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _dataset(self, h, ds: str) -> None:
        pending = self.dataset_faults.get(ds)
        if pending:
            fault = pending.pop(0)
            self.requests.append((h.path, fault))
            return self._send(h, int(fault), b'{"error": "fault"}', {"Retry-After": "0"})
        if ds not in self.datasets:
            self.requests.append((h.path, "404"))
            return self._send(h, 404, b'{"error": "Repository not found"}')
        self.requests.append((h.path, "200"))
        body = {"_id": hashlib.md5(ds.encode()).hexdigest()[:24], "id": ds, "cardData": self.datasets[ds]}
        self._send(h, 200, json.dumps(body).encode())

    def _readme(self, h, model_id: str) -> None:
        pending = self.readme_faults.get(model_id)
        if pending:
            fault = pending.pop(0)
            self.requests.append((h.path, fault))
            return self._send(h, int(fault), b'{"error": "fault"}', {"Retry-After": "0"})
        if model_id not in self.readmes:
            self.requests.append((h.path, "404"))
            return self._send(h, 404, b'{"error": "Entry not found"}')
        self.requests.append((h.path, "200"))
        body = self.readmes[model_id].encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h) -> None:
        parsed = urlparse(h.path)
        if parsed.path.endswith("/resolve/main/README.md"):
            return self._readme(h, unquote(parsed.path[1 : -len("/resolve/main/README.md")]))
        if parsed.path.startswith("/api/datasets/"):
            return self._dataset(h, unquote(parsed.path[len("/api/datasets/") :]))
        if parsed.path != "/api/models":
            self.requests.append((h.path, "404"))
            return self._send(h, 404, b'{"error": "Not Found"}')
        q = parse_qs(parsed.query)
        cursor = int(q.get("cursor", ["0"])[0])
        pending = self.faults.get(cursor)
        if pending:
            fault = pending.pop(0)
            self.requests.append((h.path, fault))
            if fault == "429":
                return self._send(h, 429, b'{"error": "rate limited"}', {"Retry-After": self.retry_after})
            if fault == "500":
                return self._send(h, 500, b'{"error": "Internal Error"}')
            if fault == "timeout":
                time.sleep(self.slow_s)
                try:
                    return self._send(h, 200, b"[]")
                except OSError:
                    return None
        if self.page_delay_s:
            time.sleep(self.page_delay_s)
        selected = self.items
        if "filter" in q:
            wanted = set(q["filter"])
            selected = [it for it in selected if wanted <= set(it.get("tags") or [])]
        expand = q.get("expand")
        page = selected[cursor : cursor + self.page_size]
        out = []
        for it in page:
            obj = {"_id": it["_id"], "id": it["id"]}
            if expand:
                obj.update({k: it[k] for k in expand if k in it})
            else:
                obj.update({k: it[k] for k in ("likes", "downloads", "tags", "pipeline_tag", "library_name")})
                obj["modelId"] = it["id"]
            out.append(obj)
        headers = {}
        if cursor + self.page_size < len(selected):
            nq = {k: v for k, v in q.items() if k != "cursor"}
            nq["cursor"] = [str(cursor + self.page_size)]
            headers["Link"] = f'<{self.url}/api/models?{urlencode(nq, doseq=True)}>; rel="next"'
        self.requests.append((h.path, "200"))
        self._send(h, 200, json.dumps(out).encode(), headers)


@pytest.fixture(scope="session", autouse=True)
def _probe_cache_in_tmp(tmp_path_factory):
    """Keep codecarbon's per-machine probe cache out of the user's ~/.cache during these tests."""
    old = os.environ.get("TERRACARBON_PROBE_CACHE")
    os.environ["TERRACARBON_PROBE_CACHE"] = str(tmp_path_factory.mktemp("probe") / "codecarbon-probe.json")
    yield
    if old is None:
        os.environ.pop("TERRACARBON_PROBE_CACHE", None)
    else:
        os.environ["TERRACARBON_PROBE_CACHE"] = old


@pytest.fixture
def hub_online(monkeypatch):
    """Allow huggingface_hub's HTTP session to reach the local server (tests set HF_HUB_OFFLINE=1)."""
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    yield


@pytest.fixture
def fake_hub(hub_online, monkeypatch):
    hub = FakeHub(synthetic_items(45), page_size=10).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    hub.stop()


@pytest.fixture
def hfco2_rows(shared_data) -> list[dict]:
    path = Path(shared_data) / "footprint" / "HFCO2.csv"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def make_items():
    """The seeded item generator (fixtures instead of imports: several test folders have a conftest)."""
    return synthetic_items


@pytest.fixture
def make_fake_hub(hub_online):
    """Start FakeHub servers over given items; all are stopped at teardown."""
    hubs = []

    def _make(items, page_size=10):
        hub = FakeHub(items, page_size=page_size).start()
        hubs.append(hub)
        return hub

    yield _make
    for hub in hubs:
        hub.stop()


@pytest.fixture
def hfco2_items(hfco2_rows):
    """Real-shaped Hub items built from every HFCO2.csv record."""
    return [item_from_hfco2(r, i) for i, r in enumerate(hfco2_rows)]
