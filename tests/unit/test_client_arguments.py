"""``Client(...)`` refuses an api_url or a transport it cannot use when it is made, saying
what to pass, instead of failing at the first request with advice that does not fit."""

from typing import Any

import httpx
import pytest
from cairn import Client


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=[])


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("transport", "why"),
    [
        (httpx.ASGITransport(app=asgi_app), "ASGITransport is an async transport"),
        (asgi_app, "asgi_app is callable, an app rather than a transport"),
        ("http://127.0.0.1:8080", "got str"),
    ],
    ids=["async-transport", "the-app-itself", "a-string"],
)
def test_a_transport_that_is_not_a_sync_httpx_one_is_refused(transport: Any, why: str) -> None:
    with pytest.raises(TypeError) as refused:
        Client("http://cairn", transport=transport)
    message = str(refused.value)
    assert message.startswith("Client(transport=...) takes a sync httpx transport")
    assert why in message
    assert "cairn_services.api.in_process.InProcessTransport(app, loop)" in message


def test_a_sync_transport_is_what_every_request_goes_through() -> None:
    with Client("http://cairn", transport=httpx.MockTransport(answer)) as client:
        assert client.list_pipelines() == []


@pytest.mark.parametrize(
    ("api_url", "advice"),
    [
        (
            "127.0.0.1:39525",
            "has no scheme; the query API speaks HTTP: write 'http://127.0.0.1:39525'",
        ),
        ("localhost", "has no scheme; the query API speaks HTTP: write 'http://localhost'"),
        (
            "ftp://127.0.0.1:8080",
            "uses 'ftp://'; the query API speaks HTTP: write http://host:port",
        ),
        ("http://", "names no host; write the host and port"),
    ],
)
def test_an_api_url_that_is_not_http_is_refused_with_what_to_write(
    api_url: str, advice: str
) -> None:
    with pytest.raises(ValueError) as refused:
        Client(api_url)
    message = str(refused.value)
    assert "given to Client()" in message and advice in message
    assert "Check that it runs there" not in message


def test_an_api_url_without_a_scheme_keeps_its_password_out_of_the_message() -> None:
    with pytest.raises(ValueError) as refused:
        Client("reader:s3cret@127.0.0.1:8080")
    assert "s3cret" not in str(refused.value)
    assert "write 'http://***@127.0.0.1:8080'" in str(refused.value)


@pytest.mark.parametrize("api_url", [123, b"http://127.0.0.1:8080", httpx.URL("http://a:pw@b")])
def test_an_api_url_that_is_not_a_str_is_a_type_error(api_url: Any) -> None:
    with pytest.raises(TypeError) as refused:
        Client(api_url)
    message = str(refused.value)
    assert message.startswith("The query API URL given to Client() must be a str")
    assert f"got {type(api_url).__name__}." in message and "pw" not in message


def test_a_cairn_api_url_without_a_scheme_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAIRN_API_URL", "127.0.0.1:39525")
    monkeypatch.setenv("CAIRN_NATS_URL", "nats://127.0.0.1:1")  # never the local stack
    with pytest.raises(ValueError, match="'127.0.0.1:39525' in CAIRN_API_URL has no scheme"):
        Client()


def test_http_and_https_urls_in_any_case_are_taken() -> None:
    for api_url in ("http://127.0.0.1:8080/", "HTTPS://cairn.example", "http://[::1]:80"):
        with Client(api_url, transport=httpx.MockTransport(answer)) as client:
            assert client.api_url == api_url.rstrip("/")
