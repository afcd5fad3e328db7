"""Server backends over real loopback HTTP, no model: the Ollama double answering from a
scripted backend, a server that never answers, and a port where nothing listens."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import ollama
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loragate.backends import BackendError, BackendUnavailable, GenerationOptions, RetryPolicy
from loragate.backends.ollama import OllamaBackend
from loragate.backends.openai import OpenAIBackend
from tests.ollama_double import OllamaDouble, ScriptedBackend

FAST_RETRY = RetryPolicy(retries=2, backoff_s=0.01)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """Accepts connections and never answers: every request times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


# -- the ollama backend against the double --------------------------------------------------
def test_ollama_chat_and_raw_prompt_through_the_double() -> None:
    scripted = ScriptedBackend(digest="ab" * 32)
    with OllamaDouble({"web4": scripted}) as host:
        backend = OllamaBackend("web4", host=host)
        chat = backend.generate([{"role": "user", "content": "alpha beta gamma"}],
                                GenerationOptions(max_tokens=10))
        raw = backend.generate("one two three four", GenerationOptions(max_tokens=2))
        assert backend.describe()["host"] == host
        assert backend.show()["details"]["format"] == "gguf"
    assert chat.text == "alpha beta gamma " and chat.finish_reason == "stop"
    assert (chat.prompt_tokens, chat.completion_tokens) == (3, 3)
    assert chat.model_digest == "ab" * 32 and chat.ttft_s is not None
    assert raw.text == "one two " and raw.truncated and raw.completion_tokens == 2


def test_the_double_speaks_ollamas_json_to_the_official_client() -> None:
    with OllamaDouble({"web4": ScriptedBackend(digest="cd" * 32)}) as host:
        client = ollama.Client(host=host)
        listed = client.list()
        whole = client.chat(model="web4", messages=[{"role": "user", "content": "x y"}],
                            stream=False, options={"num_predict": 5})
        generated = client.generate(model="web4", prompt="p q r", raw=True, stream=False,
                                    options={"num_predict": 1})
    assert [m.model for m in listed.models] == ["web4:latest"]
    assert listed.models[0].digest == "cd" * 32
    assert whole.message.content == "x y " and whole.done and whole.done_reason == "stop"
    assert generated.response == "p " and generated.done_reason == "length"
    assert generated.eval_count == 1


def test_ollama_model_missing_on_server_says_how_to_create_it() -> None:
    with OllamaDouble({"web4": ScriptedBackend()}) as host:
        backend = OllamaBackend("other", host=host)
        with pytest.raises(BackendError, match="ollama create other"):
            backend.generate("x")


def test_an_ollama_host_that_is_another_kind_of_server_is_named_as_such() -> None:
    # An OpenAI-compatible server 404s /api/chat too: "create the model" would mislead.
    from loragate.backends.openai_double import OpenAIDouble

    with OpenAIDouble() as url:
        backend = OllamaBackend("llama3", host=url.removesuffix("/v1"))
        with pytest.raises(BackendError, match="is not an Ollama server .*openai:URL#MODEL"):
            backend.generate("x")


@pytest.mark.parametrize(("value", "message"), [
    ("127.0.0.1:notaport", "OLLAMA_HOST '127.0.0.1:notaport' is not a host"),
    ("127.0.0.1:99999", "OLLAMA_HOST '127.0.0.1:99999' is not a host"),
    ("http://[::1", "OLLAMA_HOST 'http://[::1' is not a host"),
])
def test_an_ollama_host_that_cannot_be_parsed_is_a_spec_error(monkeypatch, value, message):
    from loragate.backends import SpecError, open_backend

    monkeypatch.setenv("OLLAMA_HOST", value)
    with pytest.raises(SpecError, match=re.escape(message)):
        open_backend("ollama:llama3")


def test_ollama_backend_reads_host_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with OllamaDouble({"web4": ScriptedBackend()}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        backend = OllamaBackend("web4")
        assert backend.host == host and backend.generate("hi").text == "hi "


# -- server down -----------------------------------------------------------------------------
def test_ollama_server_down_names_host_and_what_to_start() -> None:
    host = f"127.0.0.1:{_closed_port()}"
    backend = OllamaBackend("web4", host=host)
    with pytest.raises(BackendUnavailable) as caught:
        backend.generate("hi")
    assert host in str(caught.value) and "ollama serve" in str(caught.value)
    assert caught.value.host == host


def test_openai_server_down_names_host_and_what_to_start() -> None:
    port = _closed_port()
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", retry=FAST_RETRY)
    with pytest.raises(BackendUnavailable) as caught:
        backend.generate([{"role": "user", "content": "hi"}])
    assert f"127.0.0.1:{port}" in str(caught.value) and "loragate serve" in str(caught.value)


# -- timeouts and busy servers ---------------------------------------------------------------
def test_ollama_timeout_retries_then_records_an_error() -> None:
    double = OllamaDouble({"web4": ScriptedBackend()}, delay_s=1.0)
    with double as host:
        backend = OllamaBackend("web4", host=host, timeout_s=0.2, retry=FAST_RETRY)
        response = backend.generate("hi")
    assert response.finish_reason == "error" and not response.ok and response.text == ""
    assert response.attempts == 3 and double.requests == 3
    assert "Timeout" in (response.error or "")


def test_busy_server_is_retried_then_recorded_as_error() -> None:
    double = OllamaDouble({"web4": ScriptedBackend()}, fail_status=503)
    with double as host:
        response = OllamaBackend("web4", host=host, retry=FAST_RETRY).generate("hi")
    assert response.finish_reason == "error" and double.requests == 3
    assert "503" in (response.error or "")


def test_openai_timeout_retries_then_records_an_error(silent_server) -> None:
    host, accepted = silent_server
    backend = OpenAIBackend(f"http://{host}/v1", "m", timeout_s=0.2, retry=FAST_RETRY)
    response = backend.generate([{"role": "user", "content": "hi"}])
    assert response.finish_reason == "error" and response.attempts == 3
    assert len(accepted) >= 3 and "Timeout" in (response.error or "")
    assert response.model_digest == ""  # /v1/models timed out too: no digest to report


def test_batch_with_timeouts_keeps_every_sample() -> None:
    double = OllamaDouble({"web4": ScriptedBackend()}, delay_s=0.5)
    with double as host:
        backend = OllamaBackend("web4", host=host, timeout_s=0.1,
                                retry=RetryPolicy(retries=1, backoff_s=0.01), concurrency=3)
        responses = backend.generate_batch(["a", "b", "c"], concurrency=3)
    assert len(responses) == 3 and all(r.finish_reason == "error" for r in responses)


def test_httpx_is_what_times_out() -> None:
    # The retry policy relies on the clients raising httpx timeouts; keep that visible.
    assert issubclass(httpx.ReadTimeout, httpx.TimeoutException)
    assert httpx.TimeoutException in OllamaBackend.transient_errors
    assert httpx.TimeoutException in OpenAIBackend.transient_errors


def _events(*events: object, done: bool = True) -> bytes:
    lines = [b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


_STOP = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
# Streams that are well-formed HTTP but carry a fault (or a trap for the reader) in their events.
_STREAMS = {
    "no_choices": _events({"id": "x", "object": "chat.completion.chunk"}),
    "empty_choices": _events({"choices": []}, {"choices": []}),
    "delta_null": _events({"choices": [{"delta": None, "finish_reason": None}]},
                          {"choices": [{"delta": {"content": "hi"}, "finish_reason": None}]},
                          _STOP),
    "u2028": _events({"choices": [{"delta": {"content": "one\u2028two\x85three"},
                                   "finish_reason": None}]}, _STOP),
    "choices_not_list": _events({"choices": {"delta": {"content": "x"}}}),
    "empty_answer": _events({"choices": [{"delta": {"role": "assistant"},
                                          "finish_reason": None}]}, _STOP),
    "after_finish": _events({"choices": [{"delta": {"content": "I cannot."},
                                          "finish_reason": "stop"}]},
                            {"choices": [{"delta": {"content": " Here it is."},
                                          "finish_reason": None}]}),
    "two_choices": _events({"choices": [{"index": 0, "delta": {"content": "A"}},
                                        {"index": 1, "delta": {"content": "Z"}}]},
                           {"choices": [{"index": 1, "delta": {"content": "Z"}},
                                        {"index": 0, "delta": {"content": "B"}}]}, _STOP),
    "error_event": b"data: " + json.dumps({"choices": [{"delta": {"content": "{"}}]}).encode()
                   + b"\n\nevent: error\ndata: {\"message\": \"slot crashed\"}\n\n"
                   + b"data: [DONE]\n\n",
    "error_line": b"data: " + json.dumps({"choices": [{"delta": {"content": "{"}}]}).encode()
                  + b"\n\nerror: {\"code\": 500, \"message\": \"out of memory\"}\n\n"
                  + b"data: [DONE]\n\n",
    "content_filter": _events({"choices": [{"delta": {"content": "Sure"},
                                            "finish_reason": "content_filter"}]}),
    "tool_calls": _events(
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {
            "name": "run_command", "arguments": "{\"command\": "}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {
            "arguments": "\"npx vitest run\"}"}}]}, "finish_reason": "tool_calls"}]}),
    "multiline": b'data: {"choices": [{"delta":\ndata:  {"content": "hi"}}]}\n\n'
                 + _events(_STOP),
    "usage_huge": _events({"choices": [{"delta": {"content": "ok"}}]},
                          {"choices": [], "usage": {"prompt_tokens": 10**30,
                                                    "completion_tokens": 10**30}}, _STOP),
}


class _FaultyServer:
    """A loopback server that misbehaves in one way per path: an HTML page with status 200,
    an event stream cut mid-answer, a /v1/models listing that is not JSON."""

    def __init__(self, fault: str) -> None:
        import http.server
        import threading

        fault_kind = fault
        resets: list[int] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002
                pass

            def do_GET(self):  # noqa: N802
                if fault_kind == "models":
                    self._send(200, "text/html", b"<html>login</html>")
                elif fault_kind == "models_dict":
                    self._send(200, "application/json", b'{"data": {"id": "m"}}')
                elif fault_kind == "models_reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                else:
                    self._send(200, "application/json", b'{"data": [{"id": "m"}]}')

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if fault_kind == "html":
                    self._send(200, "text/html", b"<html><body>Please sign in</body></html>")
                    return
                if fault_kind in _STREAMS:
                    self._send(200, "text/event-stream", _STREAMS[fault_kind])
                    return
                if fault_kind == "reset_once" and not resets:
                    resets.append(1)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()  # RST: httpx raises ReadError
                    return
                if fault_kind == "reset_once":
                    self._send(200, "text/event-stream", _STREAMS["delta_null"])
                    return
                if fault_kind in ("keepalive", "endless", "thinking", "pondering"):
                    self._send_forever(fault_kind)
                    return
                chunk = {"choices": [{"delta": {"content": "partial "}, "finish_reason": None}]}
                self._send(200, "text/event-stream",
                           b"data: " + json.dumps(chunk).encode() + b"\n\n")

            def _send_forever(self, kind: str) -> None:
                # Until the client hangs up: a comment line, one more token or one more
                # thought ("pondering": a reasoning model that never answers), each 50 ms.
                import time

                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                token = {"choices": [{"delta": {"content": "la "}, "finish_reason": None}]}
                thought = {"choices": [{"delta": {"reasoning_content": "hmm "}}]}
                line = (b": ping\n\n" if kind == "keepalive"
                        else b"data: " + json.dumps(
                            thought if kind in ("thinking", "pondering") else token
                        ).encode() + b"\n\n")
                try:
                    # A reasoning model thinks 30 x 0.05 s, longer than the 1 s timeout.
                    for _ in range(30 if kind == "thinking" else 2000):
                        self.wfile.write(line)
                        self.wfile.flush()
                        time.sleep(0.05)
                    if kind == "thinking":
                        self.wfile.write(_events({"choices": [{"delta": {"content": "ok"}}]},
                                                 _STOP))
                except OSError:
                    pass

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("fault", "message"), [
    ("html", "not an event stream"),
    ("cut", "without a finish reason or [DONE]"),
])
def test_a_server_that_fails_mid_answer_gives_an_error_never_an_answer(fault, message):
    from loragate.backends.faults import RetryPolicy
    from loragate.backends.openai import OpenAIBackend

    server = _FaultyServer(fault)
    try:
        backend = OpenAIBackend(server.url, "m", retry=RetryPolicy(retries=0, backoff_s=0))
        response = backend.generate("Say hi")
        assert response.error and message in response.error and response.text == ""
        assert response.finish_reason == "error"
    finally:
        server.close()


def test_a_model_listing_that_is_not_json_names_the_server():
    from loragate.backends.faults import BackendError
    from loragate.backends.openai import OpenAIBackend

    server = _FaultyServer("models")
    try:
        with pytest.raises(BackendError, match="not JSON"):
            OpenAIBackend(server.url, "m").digest  # noqa: B018
    finally:
        server.close()


def _backend(server: _FaultyServer, **kwargs):  # noqa: ANN202
    from loragate.backends.faults import RetryPolicy
    from loragate.backends.openai import OpenAIBackend

    return OpenAIBackend(server.url, "m", retry=RetryPolicy(retries=0, backoff_s=0), **kwargs)


@pytest.mark.parametrize(("fault", "message"), [
    ("no_choices", "without any choice"),
    ("empty_choices", "without any choice"),
    ("choices_not_list", "'choices' is not a list"),
    ("keepalive", "nothing of the answer for more than 1 s"),
])
def test_a_stream_that_carries_no_answer_is_an_error_not_an_empty_answer(fault, message):
    server = _FaultyServer(fault)
    try:
        response = _backend(server, timeout_s=1.0).generate("Say hi")
        assert response.finish_reason == "error" and response.text == ""
        assert message in response.error and server.url in response.error
    finally:
        server.close()


def test_an_empty_answer_that_comes_as_a_choice_is_the_models_answer():
    server = _FaultyServer("empty_answer")
    try:
        response = _backend(server).generate("Say hi")
        assert response.ok and response.text == ""
    finally:
        server.close()


def test_a_server_that_ignores_max_tokens_is_cut_at_max_tokens():
    server = _FaultyServer("endless")
    try:
        from loragate.backends.base import GenerationOptions

        response = _backend(server, timeout_s=5.0).generate(
            "Say hi", GenerationOptions(max_tokens=7))
        assert response.ok and response.finish_reason == "length" and response.truncated
        assert response.text == "la " * 7
    finally:
        server.close()


def test_a_null_delta_is_skipped_and_the_rest_of_the_answer_kept():
    server = _FaultyServer("delta_null")
    try:
        response = _backend(server).generate("Say hi")
        assert response.ok and response.text == "hi"
    finally:
        server.close()


def test_line_separators_inside_an_event_do_not_split_it():
    # U+2028 and U+0085 are legal raw in JSON strings; SSE lines end at CR or LF only.
    server = _FaultyServer("u2028")
    try:
        response = _backend(server).generate("Say hi")
        assert response.ok and response.text == "one\u2028two\x85three"
    finally:
        server.close()


def test_a_model_listing_whose_data_is_not_a_list_names_the_server():
    from loragate.backends.faults import BackendError

    server = _FaultyServer("models_dict")
    try:
        with pytest.raises(BackendError, match="'data' is not a list of model objects"):
            _backend(server).digest  # noqa: B018
    finally:
        server.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                         max_size=30), max_size=6),
       st.sampled_from(["\n", "\r\n", "\r"]), st.integers(1, 7))
def test_sse_lines_splits_at_cr_and_lf_only_whatever_the_read_sizes(lines, newline, size):
    import httpx

    from loragate.backends.openai import sse_lines

    body = "".join(line + newline for line in lines).encode()
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    response = httpx.Response(200, content=iter(chunks))
    got = [line for line in sse_lines(response) if line]
    assert got == [line for line in lines if line]


@pytest.mark.parametrize(("fault", "message"), [
    ("error_event", "the server sent an error event: {\"message\": \"slot crashed\"}"),
    ("error_line", "the server sent an error: {\"code\": 500"),
    ("content_filter", "the server's content filter stopped the answer"),
])
def test_a_server_side_stop_is_an_error_never_the_models_answer(fault, message):
    server = _FaultyServer(fault)
    try:
        response = _backend(server).generate("Say hi")
        assert response.finish_reason == "error" and response.text == ""
        assert message in response.error
    finally:
        server.close()


@pytest.mark.parametrize(("fault", "text"), [
    ("after_finish", "I cannot."),  # what comes after the finish reason is not the answer
    ("two_choices", "AB"),  # one request, one answer: the first choice's
    ("tool_calls", '<tool_call>{"name": "run_command", "arguments": '
                   '{"command": "npx vitest run"}}</tool_call>'),
    ("reset_once", "hi"),  # a connection reset is retried
    ("multiline", "hi"),  # one event's data over two data lines, joined as SSE says
])
def test_the_answer_is_the_first_choice_until_its_finish_with_its_tool_calls(fault, text):
    server = _FaultyServer(fault)
    try:
        from loragate.backends.faults import RetryPolicy
        from loragate.backends.openai import OpenAIBackend

        backend = OpenAIBackend(server.url, "m", retry=RetryPolicy(retries=1, backoff_s=0))
        response = backend.generate("Say hi")
        assert response.ok and response.text == text
    finally:
        server.close()


def test_token_counts_no_context_could_hold_are_ignored():
    server = _FaultyServer("usage_huge")
    try:
        response = _backend(server).generate("Say hi")
        assert response.prompt_tokens is None and response.completion_tokens == 1
    finally:
        server.close()


def test_a_model_listing_that_resets_is_a_backend_error_in_one_line():
    server = _FaultyServer("models_reset")
    try:
        with pytest.raises(BackendError, match=r"/v1/models: ReadError"):
            _backend(server).digest  # noqa: B018
    finally:
        server.close()


@pytest.mark.parametrize(("key", "sent"), [("sk-abc\n", "sk-abc"), ("  sk-x ", "sk-x")])
def test_an_api_key_with_a_pasted_newline_is_trimmed(monkeypatch, key, sent):
    monkeypatch.setenv("OPENAI_API_KEY", key)
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m")
    assert backend._client.headers["authorization"] == f"Bearer {sent}"


@pytest.mark.parametrize("key", ["sk-\u00e9t\u00e9", "sk-a\tb"])
def test_an_api_key_a_header_cannot_carry_is_a_spec_error(monkeypatch, key):
    from loragate.backends import SpecError

    monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(SpecError, match="cannot carry"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m")


def test_a_reasoning_model_thinking_longer_than_the_timeout_is_not_cut():
    # Thinking (reasoning_content) keeps the stream alive; only silence or keep-alives do not.
    server = _FaultyServer("thinking")
    try:
        response = _backend(server, timeout_s=1.0).generate("Say hi")
        assert response.ok and response.text == "ok"
    finally:
        server.close()


@pytest.mark.parametrize(("fault", "max_tokens", "message"), [
    # Each token comes well inside timeout_s, so no read times out; the pace is what is slow
    # (50 tokens at the server's 20 a second would take 2.5 s).
    ("endless", 50, "took more than 0.7 s and was cut after"),
    # Thoughts keep the stream alive and no text ever comes (the server thinks for 100 s).
    ("pondering", 30, "took more than 0.5 s and was cut after 0 pieces"),
])
def test_a_slow_or_endless_answer_is_cut_at_the_whole_answer_limit(fault, max_tokens, message):
    server = _FaultyServer(fault)
    try:
        backend = _backend(server, timeout_s=0.2, min_tokens_per_s=100.0)
        response = backend.generate("Say hi", GenerationOptions(max_tokens=max_tokens))
        assert response.finish_reason == "error" and response.text == ""
        assert message in response.error and "min_tokens_per_s" in response.error
        assert response.error.count(server.url) == 1
        assert response.total_s < 5.0
    finally:
        server.close()


def test_without_a_pace_limit_a_slow_answer_is_kept_whole():
    server = _FaultyServer("endless")
    try:
        response = _backend(server, timeout_s=5.0, min_tokens_per_s=0.0).generate(
            "Say hi", GenerationOptions(max_tokens=12))
        assert response.ok and response.text == "la " * 12
    finally:
        server.close()


@pytest.mark.parametrize(("timeout_s", "max_tokens", "pace", "limit"), [
    (120.0, 768, 1.0, 888.0), (10.0, 100, 4.0, 35.0), (120.0, 768, 0.0, None)])
def test_the_whole_answer_limit_is_the_first_piece_then_max_tokens_at_the_pace(
        timeout_s, max_tokens, pace, limit):
    from loragate.backends.base import answer_limit_s

    assert answer_limit_s(timeout_s, max_tokens, pace) == limit


def test_the_gate_settings_pace_reaches_a_server_backend():
    from loragate.backends.spec import open_backend
    from loragate.config import BackendSettings

    server = _FaultyServer("ok")
    try:
        settings = BackendSettings(min_tokens_per_s=3.0, timeout_s=7.0)
        with open_backend(f"openai:{server.url}#m", settings) as backend:
            assert backend._answer_limit_s(GenerationOptions(max_tokens=30)) == 17.0
    finally:
        server.close()


class _Pondering(ScriptedBackend):
    """A thinking model behind Ollama: parts with no content, one each 50 ms, for 100 s."""

    def _stream(self, prompt, options):  # noqa: ANN001, ANN202
        import time

        for _ in range(2000):
            time.sleep(0.05)
            yield ""


def test_an_ollama_model_that_never_answers_is_cut_at_the_whole_answer_limit() -> None:
    with OllamaDouble({"web4": _Pondering()}) as host:
        backend = OllamaBackend("web4", host=host, timeout_s=0.2, min_tokens_per_s=100.0,
                                retry=FAST_RETRY)
        response = backend.generate([{"role": "user", "content": "hi"}],
                                    GenerationOptions(max_tokens=30))
    assert response.finish_reason == "error" and response.text == ""
    assert "took more than 0.5 s" in response.error and "after 0 pieces" in response.error
    assert response.total_s < 5.0
