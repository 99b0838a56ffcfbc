"""Spec parsing, options, key handling and the fingerprint (no server needed)."""

import pytest

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.options import accepted
from lmaudit.models import load_model
from lmaudit.models.openai import DUMMY_KEY, OpenAIModel, load_openai, parse_spec


def test_spec_with_several_urls_and_at_sign_in_model_name():
    assert parse_spec("org/model@v2@http://127.0.0.1:1/v1, http://127.0.0.1:2/v1/") == (
        "org/model@v2", ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])


@pytest.mark.parametrize("rest", ["model", "@http://127.0.0.1:1/v1", "m@ftp://x", "m@http://a/v1,http://a/v1"])
def test_bad_specs_are_config_errors(rest):
    with pytest.raises(ConfigError):
        parse_spec(rest)


def test_options_from_strings_and_unknown_option():
    model = load_model("openai:m@http://127.0.0.1:9/v1", max_concurrency="8", generation_logprobs="true",
                       timeout="2.5")
    assert (model.options.max_concurrency, model.options.generation_logprobs, model.options.timeout) == (8, True, 2.5)
    with pytest.raises(UnknownNameError, match="max_concurency.*max_concurrency"):
        load_model("openai:m@http://127.0.0.1:9/v1", max_concurency=8)
    for bad in ({"api": "rest"}, {"max_concurrency": "many"}, {"prices": "prompt=cheap"}, {"top_logprobs": 50}):
        with pytest.raises(ConfigError):
            load_model("openai:m@http://127.0.0.1:9/v1", **bad)


def test_factory_signature_lets_the_cli_filter_shared_options():
    assert accepted(load_openai, {"batch_size": "auto", "max_concurrency": 4}) == {"max_concurrency": 4}


def test_fingerprint_ignores_urls_their_order_and_the_key(monkeypatch):
    monkeypatch.setenv("LMAUDIT_API_KEY", "sk-secret-one")
    one = OpenAIModel("gpt-x", ["http://127.0.0.1:1/v1"])
    monkeypatch.setenv("LMAUDIT_API_KEY", "sk-secret-two")
    two = OpenAIModel("gpt-x", ["http://127.0.0.1:2/v1", "http://127.0.0.1:1/v1"])
    assert one.fingerprint() == two.fingerprint() == "openai:gpt-x@api=auto"
    assert "sk-secret" not in repr(two) and "sk-secret" not in two.fingerprint()
    letters = load_openai("gpt-x@http://127.0.0.1:1/v1", loglikelihood="letters", api="chat", tag="v2")
    assert letters.fingerprint() == "openai:gpt-x@api=chat;ll=letters20;tag=v2"


def test_key_comes_from_the_environment_only(monkeypatch):
    assert OpenAIModel("m", ["http://127.0.0.1:1/v1"])._key == DUMMY_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai-var")
    assert OpenAIModel("m", ["http://127.0.0.1:1/v1"])._key == "from-openai-var"
    monkeypatch.setenv("LMAUDIT_API_KEY", "from-lmaudit-var")
    assert OpenAIModel("m", ["http://127.0.0.1:1/v1"])._key == "from-lmaudit-var"
    with pytest.raises(ConfigError, match="MY_KEY"):
        load_openai("m@http://127.0.0.1:1/v1", api_key_env="MY_KEY")


def test_test_utilities_stay_on_loopback():
    from lmaudit.testing.background import BackgroundServer
    from lmaudit.testing.faultproxy import FaultProxy
    from lmaudit.testing.stubserver import StubServer

    with pytest.raises(ConfigError, match="loopback"):
        FaultProxy("http://10.1.2.3:8000")
    with pytest.raises(ConfigError, match="loopback"):
        BackgroundServer(StubServer().app, host="0.0.0.0")
    with pytest.raises(ConfigError, match="fault kind"):
        FaultProxy("http://127.0.0.1:8000", kinds=("slow",))


def test_serve_refuses_a_model_it_cannot_score():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lmaudit.serve", "--model", "openai:m@http://127.0.0.1:9/v1",
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs a white-box model" in done.stderr and "openai:m " in done.stderr


# -- issue 14 item 8: credentials in URLs, and mistakes no retry fixes ------------------------------------------

def test_redact_masks_url_credentials_and_key_like_parameters():
    from lmaudit.core.redact import redact, redact_data

    cases = {
        "openai:m@http://user:S3CRET@127.0.0.1:9/v1": "openai:m@http://user:***@127.0.0.1:9/v1",
        "clone https://S3CRET@github.com/o/r.git now": "clone https://***@github.com/o/r.git now",
        "http://a/v1,http://u:p@S3CRET@b:80/v1": "http://a/v1,http://u:***@b:80/v1",  # '@' inside the password
        "http://u:S3/CRET@host/v1": "http://u:***@host/v1",  # an unencoded '/' inside the password
        "https://h/v1?api-version=2&api_key=S3CRET&X-Amz-Signature=S3CRET#access_token=S3CRET":
            "https://h/v1?api-version=2&api_key=***&X-Amz-Signature=***#access_token=***",
        "http://[::1]:8000/v1 and http://127.0.0.1:99999/v1": "http://[::1]:8000/v1 and http://127.0.0.1:99999/v1",
        "no url: user:pass@host": "no url: user:pass@host",
    }
    for text, expected in cases.items():
        assert redact(text) == expected
    nested = redact_data({"command": ["lmaudit", "--model", "openai:m@http://k:S3CRET@h/v1"], "n": 3})
    assert nested == {"command": ["lmaudit", "--model", "openai:m@http://k:***@h/v1"], "n": 3}


@pytest.mark.parametrize("url, where", [("http://user:S3CRET@127.0.0.1:9/v1", "user:password@"),
                                        ("https://S3CRET@api.example.com/v1", "user:password@"),
                                        ("https://api.example.com/v1?api_key=S3CRET", "api_key="),
                                        ("https://api.example.com/v1?key=S3CRET", "key=")])
def test_a_credential_in_a_base_url_is_refused_without_echoing_it(url, where):
    with pytest.raises(ConfigError, match="carries a credential") as caught:
        load_model(f"openai:m@{url}")
    message = str(caught.value)
    assert "S3CRET" not in message and where in message and "LMAUDIT_API_KEY" in message
    with pytest.raises(ConfigError, match="carries a credential"):
        OpenAIModel("m", [url])  # the Python constructor checks too


@pytest.mark.parametrize("url, problem", [("ftp://127.0.0.1/v1", "unsupported scheme 'ftp'"),
                                          ("ws://127.0.0.1:9/v1", "unsupported scheme 'ws'"),
                                          ("http://127.0.0.1:99999/v1", "malformed"),
                                          ("http://127.0.0.1:80a/v1", "malformed"),
                                          ("http:///v1", "names no host"),
                                          ("http://127.0.0.1:9/v1?api-version=2", "query or fragment")])
def test_a_base_url_no_request_could_use_fails_at_load(url, problem):
    with pytest.raises(ConfigError, match=problem):
        load_model(f"openai:m@{url}")


def test_the_model_meets_its_declared_contracts():
    from lmaudit.models.base import MeteredModel, Model, StreamingModel, WhiteBoxModel

    model = load_model("openai:gpt-x@http://127.0.0.1:9/v1", prices="prompt=1")
    assert isinstance(model, Model) and isinstance(model, StreamingModel) and isinstance(model, MeteredModel)
    assert not isinstance(model, WhiteBoxModel)
    assert model.name == "openai:gpt-x"
    usage = model.usage()  # before any call: zeros, and no event loop started for it
    assert (usage["requests"], usage["total_tokens"], usage["cost_usd"]) == (0, 0, 0.0)
    assert "concurrency_cuts" not in usage
