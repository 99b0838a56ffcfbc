"""Spec parsing, options, key handling and the fingerprint (no server needed)."""

import pytest

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.options import accepted
from lmaudit.models import load_model
from lmaudit.models.openai_api import DUMMY_KEY, OpenAIModel, load_openai, parse_spec


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
    assert done.returncode == 2 and "needs a model of the hf backend" in done.stderr
