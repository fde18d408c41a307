"""Webhooks: strict URLs, refused destinations, no redirects, one bad row never blocks another."""

from __future__ import annotations

import contextlib
import http.server
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from earshot.service.app import create_app  # noqa: E402
from earshot.service.settings import Settings  # noqa: E402
from earshot.service.store import Machine, Notification, utcnow  # noqa: E402
from earshot.service.webhooks import WebhookError, WebhookPolicy, mask_url, parse_url, post_json  # noqa: E402
from earshot.errors import ParameterError  # noqa: E402
from helpers.service import hook_server, tiny_model, wait_until, wav_bytes  # noqa: E402
from helpers.signals import hum  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory)


@pytest.fixture
def make_client(model_dir, tmp_path):
    stack = contextlib.ExitStack()

    def make(**overrides):
        values = {"models_dir": model_dir, "data_dir": tmp_path / "data", "alert_open_after": 1,
                  "alert_close_after": 1, "webhook_backoff_s": 0.05, **overrides}
        return stack.enter_context(TestClient(create_app(Settings(**values))))

    with stack:
        yield make


@pytest.fixture(scope="module")
def fault():
    return wav_bytes(hum(np.random.default_rng(3), fault=True))


class _Listener(http.server.BaseHTTPRequestHandler):
    status = 204
    location = None
    received: list

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((self.path, body))
        self.send_response(type(self).status)
        if type(self).location:
            self.send_header("Location", type(self).location)
        self.end_headers()

    do_GET = do_POST  # noqa: N815 - a followed redirect would arrive as a GET

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def listener(status=204, location=None):
    handler = type("L", (_Listener,), {"status": status, "location": location, "received": []})
    with hook_server(handler) as url:
        yield url, handler


def _rows(client):
    with client.app.state.earshot.store.read() as s:
        return [(n.url, n.state, n.attempts, n.last_error) for n in s.query(Notification).order_by(Notification.id)]


def _post(client, data, machine):
    r = client.post(f"/machines/{machine}/snippets", files={"file": ("c.wav", data, "audio/wav")})
    assert r.status_code == 201, r.text
    return r.json()


# ---------------------------------------------------------------------- URL and address rules
@pytest.mark.parametrize("url", ["http://example.com/a b", "http://example.com/a\r\nX-Evil: 1", "http://exa\tmple.com/",
                                 "ftp://example.com/", "http:///path", "http://example.com:99999/", "file:///etc/passwd",
                                 "http://example.com/\\x", "http://exämple.com/", ""])
def test_malformed_urls_are_refused(url):
    with pytest.raises(WebhookError):
        parse_url(url)


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "localhost",
                                  "169.254.169.254", "10.1.2.3", "192.168.0.1", "172.16.0.1", "100.64.0.1",
                                  "224.0.0.1", "0.0.0.0", "240.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1]",
                                  "[fc00::1]", "[::]"])
def test_non_public_destinations_are_refused_unless_allowed(host):
    with pytest.raises(WebhookError, match="webhook-allow"):
        WebhookPolicy().resolve(f"http://{host}:8080/x")
    allowed = WebhookPolicy(("0.0.0.0/0", "::/0"))
    parts, address = allowed.resolve(f"http://{host}:8080/x")
    assert parts.port == 8080 and address


def test_allow_entries_are_checked_and_a_host_name_allows_its_addresses():
    assert WebhookPolicy(("localhost",)).resolve("http://LOCALHOST:1/")[1]
    assert WebhookPolicy(("127.0.0.0/8",)).resolve("http://0x7f000001:1/")[1] == "127.0.0.1"
    with pytest.raises(WebhookError):
        WebhookPolicy(("10.0.0.0/8",)).resolve("http://127.0.0.1:1/")
    with pytest.raises(ParameterError, match="webhook_allow"):
        Settings(webhook_allow=("not a host",))
    assert Settings(webhook_allow=("10.1.2.3/8", "Hooks.Example.")).webhook_allow == ("10.0.0.0/8", "hooks.example")


def test_mask_url_hides_credentials_and_query_values():
    assert mask_url("https://user:pw@hooks.example:8443/p/x?token=abc&v=1") == "https://***@hooks.example:8443/p/x?token=***&v=***"
    assert mask_url("http://hooks.example/p") == "http://hooks.example/p"


def test_a_refused_address_receives_nothing():
    with listener() as (url, handler):
        reason = post_json(url, b"{}", policy=WebhookPolicy(), timeout_s=2)
        assert reason is not None and reason.startswith("refused:") and "loopback" in reason
        assert handler.received == []
        assert post_json(url, b"{}", policy=WebhookPolicy(("127.0.0.1",)), timeout_s=2) is None
        assert len(handler.received) == 1


def test_a_redirect_is_not_followed():
    with listener() as (inner, inner_handler), listener(status=302, location=inner) as (url, handler):
        reason = post_json(url, b"{}", policy=WebhookPolicy(("127.0.0.1",)), timeout_s=2)
        assert reason is not None and "302" in reason and "not followed" in reason
        assert len(handler.received) == 1 and inner_handler.received == []


# ---------------------------------------------------------------------- the service
def test_put_refuses_bad_and_internal_urls(make_client):
    client = make_client()  # nothing allowed
    for url, why in (("http://127.0.0.1:9/h", "loopback"), ("http://169.254.169.254/latest", "link-local"),
                     ("http://0x7f000001/", "loopback"), ("http://10.0.0.5/", "private"),
                     ("http://h.example/a b", "contains"), ("http://h.example/\r\n", "contains")):
        r = client.put("/machines/m1", json={"webhook_url": url})
        assert r.status_code == 422 and why in r.json()["detail"], (url, r.text)


def test_one_bad_row_never_blocks_another_machines_delivery(make_client, fault):
    """fan's URL (stored before URLs were checked) has a space; its row comes first and fails on
    its own, recorded with the reason; pump's notification is delivered."""
    client = make_client(webhook_allow=("127.0.0.1",))
    with listener() as (url, handler):
        assert client.put("/machines/pump", json={"webhook_url": url}).status_code == 200
        assert client.put("/machines/fan", json={}).status_code == 200
        with client.app.state.earshot.store.write() as s:
            s.query(Machine).filter(Machine.name == "fan").one().webhook_url = "http://127.0.0.1:1/a b\r\n"
        assert _post(client, fault, "fan")["alert_event"] == "open"
        assert _post(client, fault, "pump")["alert_event"] == "open"
        assert wait_until(lambda: len(handler.received) == 1), _rows(client)
        assert json.loads(handler.received[0][1])["alert"]["machine"] == "pump"
    assert wait_until(lambda: _rows(client)[0][2] >= 1)
    listing = client.get("/notifications").json()["notifications"]
    by_machine = {n["machine"]: n for n in listing}
    assert by_machine["pump"]["state"] == "sent" and by_machine["pump"]["last_error"] is None
    bad = by_machine["fan"]
    assert bad["state"] in ("pending", "failed") and bad["attempts"] >= 1 and "refused" in bad["last_error"]
    assert client.get("/notifications?state=sent").json()["notifications"][0]["machine"] == "pump"
    assert client.get("/notifications?state=nope").status_code == 422


def test_service_never_posts_to_a_refused_address(make_client, fault):
    """A notification already in the outbox for a loopback listener (allowed when it was queued,
    not any more) reaches nothing; the reason is on its row."""
    client = make_client()
    with listener() as (url, handler):
        with client.app.state.earshot.store.write() as s:
            s.add(Notification(alert_id=1, event="alert.opened", url=url, payload={"event": "alert.opened"},
                               state="pending", attempts=0, created_at=utcnow(), next_attempt_at=utcnow()))
        client.app.state.earshot.notifier.wake()
        assert wait_until(lambda: _rows(client)[0][2] >= 2)
        assert handler.received == []
    assert "loopback" in _rows(client)[0][3]


def test_service_records_a_redirect_as_a_failure(make_client, fault):
    client = make_client(webhook_allow=("127.0.0.1",), webhook_retries=1)
    with listener() as (inner, inner_handler), listener(status=307, location=inner) as (url, handler):
        client.put("/machines/pump", json={"webhook_url": url})
        _post(client, fault, "pump")
        assert wait_until(lambda: _rows(client) and _rows(client)[0][1] == "failed")
        assert len(handler.received) == 1 and inner_handler.received == []
    assert "not followed" in _rows(client)[0][3]


def test_machines_listing_masks_webhook_credentials_for_readers_without_the_key(make_client):
    client = make_client(api_key="k", webhook_allow=("127.0.0.1",))
    url = "http://alice:s3cret@127.0.0.1:9/h?token=abc"
    r = client.put("/machines/pump", json={"webhook_url": url}, headers={"X-API-Key": "k"})
    assert r.status_code == 200 and r.json()["webhook_url"] == url
    for path in ("/machines", "/machines/pump"):
        text = client.get(path).text
        assert "s3cret" not in text and "abc" not in text and "***@127.0.0.1:9/h?token=***" in text
    assert client.get("/machines", headers={"X-API-Key": "k"}).json()["machines"][0]["webhook_url"] == url
