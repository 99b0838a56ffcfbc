"""The backend through the Model contract against real loopback servers (the stub, the fault proxy)."""

import socket
import threading
import time

import pytest

from lmaudit.core.errors import ConfigError, ModelError
from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodRequest, Message
from lmaudit.models import load_model
from lmaudit.models.openai import CallAborted
from lmaudit.testing.background import BackgroundServer
from lmaudit.testing.faultproxy import KINDS, FaultProxy
from lmaudit.testing.stubserver import StubServer, token_logprob, tokens

FAST = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}


def prompts(n, **kw):
    return [GenerateRequest(prompt=f"question {i}:", max_tokens=4, **kw) for i in range(n)]


def test_generate_completions_and_chat_with_hook_in_callers_thread(stub):
    server, url = stub
    model = load_model(f"openai:stub@{url}", generation_logprobs=True)
    requests = prompts(20) + [GenerateRequest(messages=(Message("user", "hi"),), max_tokens=3, stop=(" zz",))]
    seen = []
    model.set_response_hook(lambda index, response: seen.append((index, threading.get_ident(), response)))
    out = model.generate(requests)
    assert sorted(i for i, _, _ in seen) == list(range(21))
    assert {thread for _, thread, _ in seen} == {threading.get_ident()}
    assert all(out[i] == response for i, _, response in seen)
    # Deterministic server: the same prompt always gives the same words, with per-token logprobs.
    again = load_model(f"openai:stub@{url}").generate(requests[:1])[0]
    assert again.text == out[0].text and len(tokens(out[0].text)) == 4 and len(out[0].token_logprobs) == 4
    assert out[0].token_logprobs[0] == pytest.approx(token_logprob("question 0:", tokens(out[0].text)[0]))
    assert model.usage()["requests"] == 21 and model.usage()["completion_tokens"] == 4 * 20 + 3
    model.close()


def test_identical_requests_are_sent_once_and_delivered_to_every_index(stub):
    server, url = stub
    model = load_model(f"openai:stub@{url}")
    seen = []
    model.set_response_hook(lambda index, response: seen.append(index))
    out = model.generate(prompts(3) * 4)
    assert sum(server.received.values()) == 3 and sorted(seen) == list(range(12))
    assert out[:3] == out[3:6] == out[9:]


def test_usage_cost_and_n_samples(stub):
    _, url = stub
    model = load_model(f"openai:stub@{url}", prices="prompt=2,completion=10")
    samples = model.sample([GenerateRequest(prompt="tell:", max_tokens=5, temperature=1.0, seed=7)], n=3)
    assert len(samples[0]) == 3 and len({g.text for g in samples[0]}) > 1
    usage = model.usage()
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1, 15)
    assert usage["cost_usd"] == pytest.approx((1 * 2 + 15 * 10) / 1e6)


def test_max_concurrency_caps_requests_in_flight(stub):
    server, url = stub
    server.latency = 0.05
    model = load_model(f"openai:stub@{url}", max_concurrency=5)
    model.generate(prompts(40))
    assert server.peak_in_flight == 5


def test_loglikelihood_over_echo_checks_the_server_first(stub):
    server, url = stub
    model = load_model(f"openai:stub@{url}")
    result = model.loglikelihood([LoglikelihoodRequest("The answer is", " bravo delta")])[0]
    expected = token_logprob("The answer is", " bravo") + token_logprob("The answer is bravo", " delta")
    assert result.logprob == pytest.approx(expected) and result.n_tokens == 2 and result.is_greedy


@pytest.mark.parametrize("echo, message", [("wrong", "echoed prompt log-probabilities are wrong"),
                                           ("none", "omits prompt log-probabilities")])
def test_servers_with_bad_echo_logprobs_are_refused(echo, message):
    server = StubServer(echo=echo)
    with BackgroundServer(server.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1")
        with pytest.raises(ModelError, match=message) as caught:
            model.loglikelihood([LoglikelihoodRequest("The answer is", " bravo")])
        assert "loglikelihood=letters" in str(caught.value)


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_chat_only_endpoint_names_the_alternative(http):
    server = StubServer(chat_only=True)
    with BackgroundServer(server.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", http=http)
        with pytest.raises(ModelError, match="no /completions endpoint.*loglikelihood=letters"):
            model.loglikelihood([LoglikelihoodRequest("Q?", " A")])
        chat = load_model(f"openai:stub@{running.url}/v1", api="chat", http=http)
        with pytest.raises(ModelError, match="api=chat.*loglikelihood=letters"):
            chat.loglikelihood([LoglikelihoodRequest("Q?", " A")])
        # Generation from a plain prompt goes out as one user message.
        assert chat.generate(prompts(1))[0].text


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_wrong_key_is_a_clear_error_without_the_key(http, monkeypatch):
    server = StubServer(api_key="right-key-123")
    monkeypatch.setenv("LMAUDIT_API_KEY", "wrong-key-456")
    with BackgroundServer(server.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", http=http)
        with pytest.raises(ModelError, match="401.*LMAUDIT_API_KEY") as caught:
            model.generate(prompts(1))
        assert "wrong-key-456" not in str(caught.value)
        monkeypatch.setenv("LMAUDIT_API_KEY", "right-key-123")
        assert load_model(f"openai:stub@{running.url}/v1", http=http).generate(prompts(1))[0].text


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_both_clients_send_organisation_and_project(http, monkeypatch):
    server = StubServer()
    monkeypatch.setenv("OPENAI_ORG_ID", "org-abc")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-xyz")
    with BackgroundServer(server.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", http=http)
        assert model.generate(prompts(2))[1].text
        assert model.usage()["http_client"] == http
    assert server.seen_organization == ["org-abc/proj-xyz"] * 2


def test_lean_client_takes_the_proxy_from_the_environment(monkeypatch):
    from lmaudit.models.openai.transport import env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,.internal")
    assert env_proxy("https://api.example.com/v1") == "http://proxy.example:3128"
    assert env_proxy("https://gpu7.internal/v1") is None
    assert env_proxy("http://127.0.0.1:8000/v1") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert env_proxy("https://api.example.com/v1") is None


def test_default_client_is_the_lean_one_and_others_are_refused(stub):
    _, url = stub
    model = load_model(f"openai:stub@{url}")
    assert model.generate(prompts(1))[0].text and model.usage()["http_client"] == "aiohttp"
    with pytest.raises(ConfigError, match="http='httpx'.*expected 'aiohttp' or 'sdk'"):
        load_model(f"openai:stub@{url}", http="httpx")


def test_retry_after_is_honoured_and_429_cuts_concurrency(stub):
    server, url = stub
    proxy = FaultProxy(url.removesuffix("/v1"), rate=0.3, seed=3, kinds=("429",), retry_after=0.3)
    with BackgroundServer(proxy.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", **FAST)
        out = model.generate(prompts(60))
    assert all(isinstance(g, Generation) for g in out) and proxy.counts["429"] > 0
    assert model.usage()["concurrency_cuts"] >= 1
    last_429: dict[str, float] = {}
    for moment, key, outcome in proxy.events:
        if key in last_429:
            assert moment - last_429.pop(key) >= 0.3 - 0.01  # fast back-off would have retried after ~0.01 s
        if outcome == "429":
            last_429[key] = moment


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_retries_are_bounded(http, stub):
    _, url = stub
    proxy = FaultProxy(url.removesuffix("/v1"), rate=1.0, kinds=("500",))
    with BackgroundServer(proxy.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", max_retries=3, http=http, **FAST)
        with pytest.raises(ModelError, match="gave up after 4 tries"):
            model.generate(prompts(1))
    assert proxy.counts["500"] == 4


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_per_request_timeout(http, stub):
    server, url = stub
    server.latency = 2.0
    model = load_model(f"openai:stub@{url}", timeout=0.2, max_retries=1, http=http, **FAST)
    began = time.monotonic()
    with pytest.raises(ModelError, match=r"\(timeout\)"):
        model.generate(prompts(1))
    assert time.monotonic() - began < 1.5


def test_failed_requests_do_not_hide_answered_ones(stub):
    """One request that keeps failing: the others are still delivered through the hook, then an error."""
    server, url = stub
    proxy = FaultProxy(url.removesuffix("/v1"), rate=0.5, seed=11, kinds=("500",))
    with BackgroundServer(proxy.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", max_retries=0, **FAST)
        delivered = []
        model.set_response_hook(lambda index, response: delivered.append(index))
        with pytest.raises(ModelError, match=r"distinct requests .* failed \((\d+) answered were delivered\)"):
            model.generate(prompts(30))
    assert 0 < len(delivered) < 30 and len(delivered) == proxy.counts["ok"]


def test_least_outstanding_endpoint_gets_more_work():
    slow, fast = StubServer(latency=0.2), StubServer(latency=0.01)
    with BackgroundServer(slow.app) as a, BackgroundServer(fast.app) as b:
        model = load_model(f"openai:stub@{a.url}/v1,{b.url}/v1", max_concurrency=8)
        model.generate(prompts(120))
    assert sum(fast.answered.values()) > 3 * sum(slow.answered.values()) > 0


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_dead_endpoint_leaves_rotation_and_the_run_finishes_on_the_other(http):
    first, second = StubServer(latency=0.02), StubServer(latency=0.02)
    a, b = BackgroundServer(first.app).start(), BackgroundServer(second.app).start()
    try:
        model = load_model(f"openai:stub@{a.url}/v1,{b.url}/v1", max_concurrency=16, http=http, **FAST)
        killer = threading.Thread(target=lambda: (_wait_for(lambda: first.total_answered() >= 40), a.stop()))
        killer.start()
        out = model.generate(prompts(400))
        killer.join()
        assert len(out) == 400 and all(g.text for g in out)
        assert first.total_answered() + second.total_answered() >= 400 and second.total_answered() > 200
        assert model.usage()["faults"].get("connect", 0) < 40  # out of rotation, probed now and then
    finally:
        a.stop()
        b.stop()


def test_all_endpoints_dead_fails_in_bounded_time():
    model = load_model("openai:stub@http://127.0.0.1:9/v1", dead_endpoint_timeout=1.0, max_retries=50, **FAST)
    began = time.monotonic()
    with pytest.raises(ModelError, match="accepted a connection|gave up"):
        model.generate(prompts(5))
    assert time.monotonic() - began < 8


def _wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_every_fault_kind_is_survived(http, stub):
    server, url = stub
    proxy = FaultProxy(url.removesuffix("/v1"), rate=0.25, seed=2, hold=1.0)
    requests = prompts(160)
    with BackgroundServer(proxy.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", http=http, timeout=0.5, **FAST)
        out = model.generate(requests)
    assert out == load_model(f"openai:stub@{url}").generate(requests)
    assert all(proxy.counts[kind] > 0 for kind in KINDS)
    assert model.usage()["requests"] == 160 and model.usage()["retries"] >= sum(proxy.counts[k] for k in KINDS)


# -- issue 14 item 8: fail fast on what no retry fixes ---------------------------------------------------------

@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_a_wrong_key_stops_the_call_at_once(http, monkeypatch):
    """401 is the same answer for every request: the call stops instead of sending all 300 (or retrying)."""
    server = StubServer(api_key="right-key-123")
    monkeypatch.setenv("LMAUDIT_API_KEY", "wrong-key-456")
    with BackgroundServer(server.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", http=http, max_concurrency=8)
        began = time.monotonic()
        with pytest.raises(CallAborted, match="401.*LMAUDIT_API_KEY") as caught:
            model.generate(prompts(300))
    assert time.monotonic() - began < 5 and "wrong-key-456" not in str(caught.value)
    assert sum(server.received.values()) <= 3 * 8  # the first window, not the whole call
    assert model.usage()["retries"] == 0


def _status_server(status: int):
    """An app answering every request with one error status; counts what it received."""
    from aiohttp import web

    received = []

    async def answer(request):
        received.append(await request.read())
        return web.json_response({"error": {"message": f"status {status}"}}, status=status)

    def app():
        application = web.Application()
        application.router.add_post("/v1/completions", answer)
        return application

    return app, received


@pytest.mark.parametrize("status, aborts", [(403, True), (400, False), (422, False)])
def test_only_statuses_that_hold_for_every_request_stop_the_call(status, aborts):
    """403 (no access) stops the call; 400/422 belong to one request: the others are still sent, none retried."""
    app, received = _status_server(status)
    with BackgroundServer(app) as running:
        model = load_model(f"openai:stub@{running.url}/v1", max_concurrency=4)
        with pytest.raises(ModelError, match=f"answered {status}") as caught:
            model.generate(prompts(60))
    assert isinstance(caught.value, CallAborted) is aborts
    assert (len(received) <= 3 * 4) if aborts else (len(received) == 60)
    assert model.usage()["retries"] == 0


def test_answers_that_arrived_before_an_abort_are_delivered(stub):
    """The key is revoked mid-call: every answer that came back before is still handed to the hook."""
    server, url = stub
    model = load_model(f"openai:stub@{url}", max_concurrency=4)
    delivered = []

    def hook(index, response):
        delivered.append(index)
        if len(delivered) == 20:
            server.api_key = "revoked"  # later requests are answered 401

    model.set_response_hook(hook)
    with pytest.raises(CallAborted, match="401"):
        model.generate(prompts(200))
    assert 20 <= len(delivered) < 200 and len(delivered) == sum(server.answered.values())
    assert sum(server.received.values()) < 100


@pytest.mark.parametrize("http", ["sdk", "aiohttp"])
def test_a_host_name_that_does_not_resolve_fails_at_once(http):
    try:
        socket.getaddrinfo("no-such-host.invalid", 80)
        pytest.skip("this machine's resolver answers for .invalid names")
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            pytest.skip("this machine has no working resolver (a lookup fails as 'try again', which is retried)")
    model = load_model("openai:stub@http://no-such-host.invalid/v1", http=http)  # default retries: 8, from 0.5 s
    began = time.monotonic()
    with pytest.raises(CallAborted, match="'no-such-host.invalid'.*does not resolve.*not retried"):
        model.generate(prompts(3))
    assert time.monotonic() - began < 5 and model.usage()["retries"] == 0


def test_a_temporary_resolver_failure_is_still_retried():
    from lmaudit.models.openai.transport import ConnectFailed, Dropped, Unfixable, connection_fault

    def wrapped(errno):
        try:
            try:
                raise socket.gaierror(errno, "resolver says so")
            except socket.gaierror as cause:
                raise ConnectionError("connect failed") from cause
        except ConnectionError as exc:
            return connection_fault(exc, "http://h.example/v1")

    assert isinstance(wrapped(socket.EAI_NONAME), Unfixable)
    assert not isinstance(wrapped(socket.EAI_AGAIN), Unfixable)
    assert isinstance(connection_fault(ConnectionRefusedError(111, "refused"), "http://h/v1"), ConnectFailed)
    assert isinstance(connection_fault(OSError("reset"), "http://h/v1"), Dropped)
