"""HTTP provider and registry, against a real scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from nearnb.providers import ProviderError, Resolved, provider_names, resolve
from nearnb.providers.local import LocalProvider
from nearnb.providers.openai_compat import OpenAICompatProvider
from tests.support.openai_server import Reply, ScriptedOpenAI

KEY = "sk-test-SECRET"
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def _no_global_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NEARNB_MODEL", "NEARNB_PROVIDER", "NEARNB_LOCAL_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def srv() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


def provider(srv: ScriptedOpenAI, *, retries: int = 0) -> OpenAICompatProvider:
    return OpenAICompatProvider("scripted", srv.base_url, KEY, max_retries=retries)


def assert_no_key(exc: BaseException) -> None:
    """The key appears nowhere in the error, its repr or its exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        assert KEY not in str(seen) and KEY not in repr(seen)
        seen = seen.__cause__ or seen.__context__


# ------------------------------------------------------------------ HTTP provider


def test_stream_yields_openai_chunks(srv: ScriptedOpenAI) -> None:
    srv.script(["Hel", "lo", " world"])
    chunks = list(provider(srv).stream(MESSAGES, model="m"))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Hello world"
    assert chunks[-1].choices[0].finish_reason == "stop"
    dumped = chunks[1].model_dump(exclude_unset=True)
    assert dumped["object"] == "chat.completion.chunk"
    assert dumped["choices"][0]["delta"] == {"content": "Hel"}


def test_parameters_reach_the_server(srv: ScriptedOpenAI) -> None:
    srv.script("ok")
    stream = provider(srv).stream(
        MESSAGES, model="m", temperature=0.3, max_tokens=7, top_k=5, seed=None
    )
    list(stream)
    request = srv.requests[-1]
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 7
    assert request.body["top_k"] == 5  # unknown to the SDK: sent through extra_body
    assert "seed" not in request.body  # None means "provider default"
    assert request.body["stream"] is True
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_complete_returns_chat_completion(srv: ScriptedOpenAI) -> None:
    srv.script(["Hel", "lo"])
    result = provider(srv).complete(MESSAGES, model="m", temperature=0)
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == "Hello"
    assert srv.requests[-1].body.get("stream") in (None, False)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "unauthorized: check the API key for provider 'scripted'"),
        (429, "rate limited by provider 'scripted' (HTTP 429)"),
        (500, "provider 'scripted' failed with HTTP 500"),
    ],
)
@pytest.mark.parametrize("streamed", [True, False])
def test_http_errors_are_clear_and_keyless(
    srv: ScriptedOpenAI, status: int, expected: str, streamed: bool
) -> None:
    # Real servers echo (part of) the key; the message must not carry it on.
    srv.script(Reply.error(status, f"Incorrect API key provided: {KEY}"))
    http = provider(srv)
    with pytest.raises(ProviderError) as caught:
        if streamed:
            http.stream(MESSAGES, model="m")
        else:
            http.complete(MESSAGES, model="m")
    assert expected in str(caught.value)
    assert caught.value.status == status and caught.value.provider == "scripted"
    assert_no_key(caught.value)
    assert KEY not in repr(http)


def test_connection_refused() -> None:
    http = OpenAICompatProvider("dead", "http://127.0.0.1:9/v1", KEY, max_retries=0)
    with pytest.raises(ProviderError, match=r"cannot reach provider 'dead' at http://127.0.0.1:9"):
        http.stream(MESSAGES, model="m")


def test_retry_once_on_server_error(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.error(500, retry_after_ms=10), "recovered")
    result = provider(srv, retries=1).complete(MESSAGES, model="m")
    assert result.choices[0].message.content == "recovered"
    assert len(srv.requests) == 2


def test_drop_mid_stream_raises_after_partial_chunks(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text("a", "b", "c", "d", drop_after=2))
    received: list[str] = []
    with pytest.raises(ProviderError, match="stream from provider 'scripted' broke") as caught:
        for chunk in provider(srv).stream(MESSAGES, model="m"):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "ab"
    assert_no_key(caught.value)


def test_error_event_mid_stream(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text("a", "b", "c", error_after=1, error_message=f"overloaded ({KEY})"))
    received: list[str] = []
    with pytest.raises(ProviderError, match="reported an error mid-stream: overloaded") as caught:
        for chunk in provider(srv).stream(MESSAGES, model="m"):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "a"
    assert_no_key(caught.value)


def test_tool_call_deltas_pass_through(srv: ScriptedOpenAI) -> None:
    args = {"city": "Paris", "unit": "celsius"}
    srv.script(Reply.tool_call("weather", args, text=["Let me check."]))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    chunks = list(provider(srv).stream(MESSAGES, model="m", tools=tools))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "weather"
    assert calls[0].id and len(calls) > 2  # arguments arrive in several deltas
    assert json.loads("".join(tc.function.arguments or "" for tc in calls if tc.function)) == args
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert srv.requests[-1].body["tools"] == tools


def test_off_spec_chunks_are_accepted_leniently(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text("x", finish_reason="eos"))  # not an OpenAI finish_reason
    chunks = list(provider(srv).stream(MESSAGES, model="m"))
    assert chunks[-1].choices[0].finish_reason == "eos"


def test_close_stops_a_slow_stream(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text(*["t"] * 100, delay=0.05))
    stream = provider(srv).stream(MESSAGES, model="m")
    next(stream)
    started = time.monotonic()
    stream.close()
    assert list(stream) == []
    assert time.monotonic() - started < 1


def test_close_from_another_thread_ends_iteration(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text(*["t"] * 100, delay=0.05))
    stream = provider(srv).stream(MESSAGES, model="m")
    threading.Timer(0.2, stream.close).start()
    count = sum(1 for _ in stream)  # ends quietly, no ProviderError
    assert 1 <= count < 50


def test_many_chunks_stream_quickly(srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text(*["x"] * 20_000))
    http = provider(srv)
    count = sum(1 for _ in http.stream(MESSAGES, model="m"))
    assert count == 20_002  # speed is measured in bench/, not asserted here


# ------------------------------------------------------------------ registry


def test_default_is_local_without_credentials() -> None:
    resolved = resolve()
    assert isinstance(resolved.provider, LocalProvider)
    assert (resolved.model, resolved.label) == ("smollm2", "local::smollm2")
    # nobody asked for the embedded model, so the run says it stands in
    assert resolved.notice and "No provider credentials are set" in resolved.notice
    assert resolve(provider="local").notice is None  # asked for by name: no notice


def test_bare_model_means_fireworks_as_in_near(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # credentials for another vendor only
    resolved = resolve("llama-v3p1-70b-instruct")
    assert resolved.label == "local::smollm2"
    assert resolved.notice and "'fireworks'" in resolved.notice
    assert resolve().provider.name == "openai"  # nothing named: the provider with a key


def test_provider_model_syntax_overrides_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    resolved = resolve("local::smollm2", provider="fireworks")
    assert resolved.label == "local::smollm2" and resolved.provider.name == "local"


def test_fireworks_short_names_map_to_accounts_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    resolved = resolve("fireworks::llama-v3p3-70b-instruct")
    assert resolved.model == "accounts/fireworks/models/llama-v3p3-70b-instruct"
    assert resolved.label == "fireworks::llama-v3p3-70b-instruct"
    assert isinstance(resolved.provider, OpenAICompatProvider)
    assert resolved.provider.base_url == "https://api.fireworks.ai/inference/v1"
    full = resolve("accounts/fireworks/models/qwen3-8b", provider="fireworks")
    assert full.model == "accounts/fireworks/models/qwen3-8b"
    assert resolve().provider.name == "fireworks"  # credentials present: NEAR's default
    assert KEY not in repr(resolved) and KEY not in repr(resolved.provider)


def test_config_file_provider(srv: ScriptedOpenAI, nearnb_home: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    (nearnb_home / "config.toml").write_text(
        f"""
[providers.myhub]
base_url = "{srv.base_url}"
api_key_env = "MYHUB_TOKEN"
default_model = "small"
models = {{ small = "org/small-model-v2" }}
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("MYHUB_TOKEN", KEY)
    assert "myhub" in provider_names()
    resolved = resolve(provider="myhub")
    assert (resolved.model, resolved.label, resolved.notice) == (
        "org/small-model-v2", "myhub::small", None
    )  # fmt: skip
    srv.script("from myhub")
    text = "".join(
        c.choices[0].delta.content or ""
        for c in resolved.provider.stream(MESSAGES, model=resolved.model)
    )
    assert text == "from myhub"
    request = srv.requests[-1]
    assert request.body["model"] == "org/small-model-v2"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert resolve(provider="myhub").provider is resolved.provider  # cached client


def test_env_var_provider(srv: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARNB_PROVIDER_ENVHUB_BASE_URL", srv.base_url)
    monkeypatch.setenv("NEARNB_PROVIDER_ENVHUB_API_KEY", KEY)
    monkeypatch.setenv("NEARNB_PROVIDER_ENVHUB_MODEL", "tiny")
    resolved = resolve("envhub::")
    assert resolved.label == "envhub::tiny" and resolved.notice is None
    srv.script("ok")
    assert resolved.provider.complete(MESSAGES, model=resolved.model).choices[0].message.content
    assert srv.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_loopback_provider_needs_no_key(srv: ScriptedOpenAI,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("NEARNB_PROVIDER_OLLAMA_BASE_URL", srv.base_url)
    resolved = resolve("ollama::qwen")
    assert resolved.notice is None and resolved.label == "ollama::qwen"
    srv.script("hi")
    resolved.provider.complete(MESSAGES, model=resolved.model)
    assert srv.requests[-1].headers["authorization"] == "Bearer none"


def test_missing_credentials_fall_back_with_notice() -> None:
    resolved = resolve("llama-v3p3-70b-instruct", provider="fireworks")
    assert isinstance(resolved.provider, LocalProvider)
    assert resolved.label == "local::smollm2"
    assert resolved.notice is not None
    assert "No credentials for provider 'fireworks' (set FIREWORKS_API_KEY)" in resolved.notice
    assert "local::smollm2" in resolved.notice and "\n" not in resolved.notice


def test_nearai_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARAI_API_KEY", KEY)
    resolved = resolve(provider="nearai")
    assert resolved.notice is not None and "base_url" in resolved.notice
    assert KEY not in resolved.notice
    monkeypatch.setenv("NEARNB_PROVIDER_NEARAI_BASE_URL", "https://hub.example/v1")
    assert resolve(provider="nearai").provider.name == "nearai"


def test_fallback_error_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARNB_FALLBACK", "error")
    with pytest.raises(ProviderError, match="set OPENAI_API_KEY.*NEARNB_FALLBACK=error"):
        resolve("openai::gpt-4o-mini")


def test_unknown_provider_lists_known_names() -> None:
    with pytest.raises(ProviderError) as caught:
        resolve("nosuch::model")
    message = str(caught.value)
    assert "unknown provider 'nosuch'" in message
    for name in ("openai", "fireworks", "nearai", "local"):
        assert name in message


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("NEARNB_MODEL", "local::smollm2")
    assert resolve("openai::gpt-4o").label == "local::smollm2"
    monkeypatch.delenv("NEARNB_MODEL")
    monkeypatch.setenv("NEARNB_PROVIDER", "openai")
    # the agent's Fireworks model means nothing to OpenAI: the provider's default is used
    assert resolve("fireworks::llama-v3p3-70b-instruct").label == "openai::gpt-4o-mini"
    assert resolve("openai::gpt-4o").label == "openai::gpt-4o"


def test_defaults_provider_and_config_defaults(
    nearnb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    assert resolve(defaults_provider="openai").provider.name == "openai"
    (nearnb_home / "config.toml").write_text('[defaults]\nprovider = "openai"\n')
    assert resolve().provider.name == "openai"
    assert resolve(provider="fireworks").provider.name == "fireworks"


def test_reprs_never_show_keys(srv: ScriptedOpenAI, nearnb_home: Path) -> None:
    (nearnb_home / "config.toml").write_text(
        f'[providers.inline]\nbase_url = "{srv.base_url}"\napi_key = "{KEY}"\n'
    )
    from nearnb.providers import provider_spec

    resolved = resolve("inline::m")
    for obj in (resolved, resolved.provider, provider_spec("inline")):
        assert KEY not in repr(obj) and KEY not in str(obj)
    assert isinstance(resolved, Resolved)
