"""The wire format over plain HTTP: prompt forms, echo, end-of-sequence, stop, usage, errors, tokenizer routes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from serve_helpers import MODEL_NAME, start_server

pytestmark = pytest.mark.slow
ANSWERED = ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
            "The capital of France is Paris.")  # the model's next token here is its end-of-sequence token


def post(url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def complete(server, **body: Any) -> dict[str, Any]:
    status, answer = post(server.v1 + "/completions", {"model": MODEL_NAME, "temperature": 0, **body})
    assert status == 200, answer
    return answer


def test_every_prompt_form_gives_the_same_echo(server, smollm2):
    text = "The capital of France is Paris"
    ids = smollm2.encode(text)
    other = "Water boils at 100 degrees"
    want = complete(server, prompt=text, echo=True, max_tokens=0, logprobs=1)["choices"][0]
    assert want["text"] == text and want["finish_reason"] == "length"
    forms = {"ids": ids, "lists of ids": [ids, smollm2.encode(other)], "texts": [text, other]}
    for form, prompt in forms.items():
        answer = complete(server, prompt=prompt, echo=True, max_tokens=0, logprobs=1)
        assert len(answer["choices"]) == (1 if form == "ids" else 2)
        assert answer["choices"][0] == want, form
        if form != "ids":
            assert answer["choices"][1]["text"] == other and answer["choices"][1]["index"] == 1
        assert answer["usage"]["prompt_tokens"] == len(ids) + (0 if form == "ids" else len(smollm2.encode(other)))


def test_max_tokens_one_always_lists_one_generated_token_even_end_of_sequence(server, smollm2):
    """The cause of issue 19's zeros: lm-eval drops the last listed token, which must be the generated one."""
    prompt_ids = smollm2.encode(ANSWERED)
    choice = complete(server, prompt=ANSWERED, echo=True, max_tokens=1, logprobs=1)["choices"][0]
    logprobs = choice["logprobs"]
    assert choice["finish_reason"] == "stop" and choice["text"] == ANSWERED  # EOS adds no text...
    assert logprobs["tokens"][-1] == smollm2.tokenizer.eos_token  # ...but is listed, with its logprob
    assert len(logprobs["token_logprobs"]) == len(prompt_ids) + 1 and logprobs["token_logprobs"][-1] < 0
    assert logprobs["text_offset"][-1] == len(ANSWERED)
    # without echo: the one token alone, counted in usage
    answer = complete(server, prompt=ANSWERED, max_tokens=1, logprobs=0)
    assert answer["choices"][0]["text"] == "" and answer["choices"][0]["logprobs"]["tokens"] == ["<|im_end|>"]
    assert answer["usage"]["completion_tokens"] == 1


def test_echo_offsets_and_alternatives(server):
    prompt = "Paris is the capital of"
    choice = complete(server, prompt=prompt, echo=True, max_tokens=3, logprobs=3)["choices"][0]
    logprobs = choice["logprobs"]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert choice["text"].startswith(prompt) and "".join(logprobs["tokens"]) == choice["text"]
    for token, offset in zip(logprobs["tokens"], logprobs["text_offset"]):
        assert choice["text"][offset:offset + len(token)] == token
    for token, value, top in zip(logprobs["tokens"][1:], logprobs["token_logprobs"][1:], logprobs["top_logprobs"][1:]):
        assert 3 <= len(top) <= 4 and top[token] == value  # the k best plus the chosen token
        assert list(top.values()) == sorted(top.values(), reverse=True)
    generated = logprobs["top_logprobs"][-3:]
    assert all(max(top.values()) == top[token] for top, token in zip(generated, logprobs["tokens"][-3:]))  # greedy


def test_stop_strings_and_seeded_samples(server):
    whole = complete(server, prompt="The three primary colours are", max_tokens=12)["choices"][0]["text"]
    assert "," in whole  # the premise: greedy text crosses a comma
    cut = complete(server, prompt="The three primary colours are", max_tokens=12, stop=[",", "zzz"], logprobs=0)
    choice = cut["choices"][0]
    assert choice["text"] == whole[:whole.index(",")] and choice["finish_reason"] == "stop"
    assert "," in "".join(choice["logprobs"]["tokens"])  # the token that completed the stop string stays listed
    body = {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 1.0, "seed": 11, "n": 3}
    first = complete(server, **body)
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert len({c["text"] for c in first["choices"]}) > 1
    assert complete(server, **body)["choices"] == first["choices"]
    unseeded = [c["text"] for c in complete(server, **{**body, "seed": None})["choices"]]
    assert len(set(unseeded)) > 1  # without a seed the choices are not copies of one draw


@pytest.mark.parametrize("path, body, param", [
    ("/completions", {"prompt": ""}, "prompt"),
    ("/completions", {"prompt": []}, "prompt"),
    ("/completions", {"prompt": [1.5, 2]}, "prompt"),
    ("/completions", {"prompt": [[1, 2], "mixed"], "max_tokens": 1}, None),  # mixed lists are fine...
    ("/completions", {"prompt": [[1, 2], [True]]}, "prompt"),  # ...booleans are not token ids
    ("/completions", {"prompt": [10 ** 9]}, "prompt"),
    ("/completions", {"prompt": "x", "n": 0}, "n"),
    ("/completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
    ("/completions", {"prompt": "x", "temperature": 3}, "temperature"),
    ("/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("/completions", {"prompt": "x", "logit_bias": {"1": 5}}, "logit_bias"),
    ("/completions", {"prompt": "x", "suffix": "y"}, "suffix"),
    ("/completions", {"prompt": "x", "best_of": 2}, "best_of"),
    ("/completions", {"prompt": "x", "max_tokens": 10 ** 6}, "max_tokens"),
    ("/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    ("/chat/completions", {"messages": "hi"}, "messages"),
    ("/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}, "top_logprobs"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, "tools"),
])
def test_bad_fields_are_named(server, path, body, param):
    status, answer = post(server.v1 + path, {"model": MODEL_NAME, "max_tokens": 1, **body})
    if param is None:
        assert status == 200, answer
        return
    assert status == 400 and answer["error"]["param"] == param and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"]


def test_other_errors_are_openai_errors(server):
    status, answer = post(server.v1 + "/completions", {"model": "gpt-4", "prompt": "x"})
    assert status == 404 and "smollm2" in answer["error"]["message"]
    assert post(server.v1 + "/completions", None, raw=b"{not json")[0] == 400
    assert post(server.v1 + "/completions", [1, 2])[0] == 400
    assert get(server.v1 + "/nothing")[0] == 404
    status, models = get(server.v1 + "/models")
    assert status == 200 and models["data"][0]["id"] == MODEL_NAME and models["data"][0]["max_model_len"] > 0
    assert get(server.root + "/health")[0] == 200


def test_tokenizer_routes_are_the_models_tokenizer(server, smollm2):
    text = "Question: which organ filters blood?\nAnswer: the kidney"
    status, answer = post(server.root + "/tokenize", {"prompt": text, "add_special_tokens": False})
    # what lm-eval's tokenizer_backend=huggingface computes locally from the same tokenizer files
    assert status == 200 and answer["tokens"] == smollm2.tokenizer(text, add_special_tokens=False).input_ids
    assert answer["count"] == len(answer["tokens"])
    status, back = post(server.root + "/detokenize", {"tokens": answer["tokens"]})
    assert status == 200 and back["prompt"] == text
    messages = [{"role": "user", "content": "hi"}]
    status, chat = post(server.root + "/tokenize", {"messages": messages})
    expected = smollm2.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False)
    assert status == 200 and chat["tokens"] == list(expected)
    status, info = get(server.root + "/tokenizer_info")
    assert status == 200 and info["eos_token"] == smollm2.tokenizer.eos_token and info["chat_template"]
    assert post(server.root + "/detokenize", {"tokens": [-1]})[0] == 400


def test_api_key_and_chat_only(smollm2, one_thread):
    background, served = start_server(smollm2, api_key="sekret", chat_only=True)
    try:
        body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        assert post(served.v1 + "/chat/completions", body)[0] == 401
        assert post(served.v1 + "/chat/completions", body, {"Authorization": "Bearer wrong"})[0] == 401
        assert post(served.v1 + "/chat/completions", body, {"Authorization": "Bearer sekret"})[0] == 200
        assert post(served.v1 + "/completions", {"prompt": "x"}, {"Authorization": "Bearer sekret"})[0] == 404
        assert get(served.root + "/health")[0] == 200  # liveness needs no key
    finally:
        background.stop()


def test_a_client_that_leaves_a_stream_stops_its_generation(server, capfd):
    stats = server.server.engine.stats
    host, port = server.root.removeprefix("http://").split(":")
    body = json.dumps({"model": MODEL_NAME, "prompt": "Count: 1, 2, 3,", "max_tokens": 4000, "temperature": 0,
                       "stream": True}).encode()
    before = stats["generated_tokens"]
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"data: {" not in received:  # the first token has streamed
            received += sock.recv(65536)
    # One worker: this answer comes once the abandoned stream has stopped (or after 4000 tokens if it did not).
    assert complete(server, prompt="Hello", max_tokens=1)["usage"]["completion_tokens"] == 1
    assert stats["generated_tokens"] - before - 1 < 500
    assert "Traceback" not in capfd.readouterr().err
