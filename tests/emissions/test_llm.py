"""The optional LLM member against a local OpenAI-compatible stub server."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from terracarbon.emissions.classify import NaicsClassifier
from terracarbon.emissions.llm import LLMError, LLMMember


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers /v1/chat/completions by picking the LAST listed option (or failing on demand)."""

    requests: list = []
    mode = "last"

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if type(self).mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        prompt = body["messages"][-1]["content"]
        options = [ln.split(":")[0] for ln in prompt.splitlines() if ln[:2].isdigit()]
        answer = f"The best match is {options[-1]}." if type(self).mode == "last" else "no idea"
        payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture()
def stub():
    _Stub.requests = []
    _Stub.mode = "last"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", _Stub
    srv.shutdown()


def test_llm_member_request_and_parse(stub):
    url, handler = stub
    m = LLMMember(url, "stub-model", api_key="sekret")
    assert m.url.endswith("/v1/chat/completions")
    choice = m.choose(
        "we write software", [("541511", "Custom Computer Programming"), ("541512", "Systems")], level=6
    )
    assert choice == "541512"
    req = handler.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sekret"
    assert req["body"]["model"] == "stub-model" and req["body"]["messages"][0]["role"] == "system"
    # cached: the same question is not asked twice
    m.choose("we write software", [("541511", "Custom Computer Programming"), ("541512", "Systems")], level=6)
    assert len(handler.requests) == 1


def test_llm_vote_changes_the_decision(stub, small_tax, st_model, emb_cache):
    url, handler = stub
    text = "We write custom software for our clients"
    base = NaicsClassifier(small_tax, st_model, cache_dir=emb_cache, beam=3)
    plain = base.predict([text])[0]
    assert plain.code == "541511"
    llm = LLMMember(url, "stub")
    clf = NaicsClassifier(small_tax, st_model, cache_dir=emb_cache, beam=3, llm=llm)
    clf.calibration = {"llm_weight": 50.0}  # a dominant LLM vote
    voted = clf.predict([text])[0]
    # the stub always picks the last listed child: sector 54, ..., 541512 among 541511/541512
    assert voted.code == "541512"
    assert llm.calls >= 2 and all(r["path"] == "/v1/chat/completions" for r in handler.requests)


def test_llm_failures_abstain_or_raise(stub, small_tax, st_model, emb_cache):
    url, handler = stub
    handler.mode = "error"
    soft = LLMMember(url, "stub")
    assert soft.choose("x", [("11", "a"), ("54", "b")], level=2) is None
    clf = NaicsClassifier(small_tax, st_model, cache_dir=emb_cache, llm=soft)
    assert (
        clf.predict(["We write custom software for our clients"])[0].code == "541511"
    )  # no vote, same answer
    with pytest.raises(LLMError, match="failed"):
        LLMMember(url, "stub", strict=True).choose("y", [("11", "a"), ("54", "b")], level=2)
    handler.mode = "garbage"
    assert LLMMember(url, "stub").choose("z", [("11", "a"), ("54", "b")], level=2) is None
    assert LLMMember.parse("answer: 31-33", ["11", "31-33"]) == "31-33"
