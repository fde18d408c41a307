"""Issue 15: the decode budget, bounded ids, strict name patterns, slow clients, wording."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.errors import AudioError, ParameterError
from earshot.io import DecodeLimitError, DecodeLimits, check_header, load, resample
from earshot.io.channels import load_channels


def crafted_wav(path: Path, *, sr: int, channels: int = 1, n_frames: int = 16000) -> Path:
    """A PCM_16 wav whose header claims ``sr`` (a few bytes of struct, then zeros)."""
    data = n_frames * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, sr, (sr * channels * 2) & 0xFFFFFFFF, channels * 2, 16) + b"data" + struct.pack("<I", data)
    path.write_bytes(header + b"\x01\x00" * (n_frames * channels))
    return path


@pytest.mark.parametrize("rate", [1_000_003, 2_147_483_647])
def test_a_header_rate_outside_the_range_is_refused_before_decoding(tmp_path, rate):
    path = crafted_wav(tmp_path / "bomb.wav", sr=rate)
    with pytest.raises(AudioError) as exc:
        load(path, sr=16000)
    assert str(exc.value).startswith(str(path)) and "8000-192000 Hz" in str(exc.value)
    assert isinstance(exc.value, DecodeLimitError) and not exc.value.too_large


def test_the_flac_bomb_is_refused_from_its_header():
    # 8 channels, 96 kHz, 600 s: 1.8 GB of float32 from a few hundred KB of FLAC
    with pytest.raises(DecodeLimitError) as exc:
        check_header("bomb.flac", sr=96000, channels=8, frames=96000 * 600,
                     limits=DecodeLimits(max_decoded_bytes=64 * 2**20))
    assert exc.value.too_large and "1758 MiB" in str(exc.value)
    with pytest.raises(DecodeLimitError, match="65 channels"):
        check_header("x.wav", sr=16000, channels=65, frames=10)
    with pytest.raises(DecodeLimitError, match="at most 5 s"):
        check_header("x.wav", sr=16000, channels=1, frames=16000 * 6, limits=DecodeLimits(max_duration_s=5))
    check_header("x.wav", sr=44100, channels=2, frames=44100 * 60, target_sr=16000)  # a usual file passes


def test_resampling_refuses_an_unbounded_filter(tmp_path):
    with pytest.raises(ParameterError, match="bounded filter"):
        resample(np.zeros(100, np.float32), 16001, 16000)
    path = crafted_wav(tmp_path / "odd.wav", sr=16001)
    with pytest.raises(DecodeLimitError, match="bounded filter"):
        load(path, sr=16000)
    assert load(path, sr=None)[1] == 16001  # kept at its own rate, nothing to resample


def test_multichannel_reads_keep_only_the_channel_needed(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.uniform(-0.5, 0.5, (200_000, 4))).astype(np.float32)
    for subtype in ("PCM_16", "FLOAT"):
        path = tmp_path / f"four-{subtype}.wav"
        sf.write(path, data, 16000, subtype=subtype)
        ref = sf.read(path, dtype="float32")[0]
        np.testing.assert_allclose(load(path, sr=None, channel=2)[0], ref[:, 2], atol=1e-6)
        np.testing.assert_allclose(load(path, sr=None)[0], ref.mean(axis=1), atol=1e-6)
    with pytest.raises(DecodeLimitError, match="decodes to"):
        load(path, sr=None, channel=0, limits=DecodeLimits(max_decoded_bytes=1 * 2**20))
    with pytest.raises(DecodeLimitError, match="decodes to"):
        load_channels(path, sr=None, limits=DecodeLimits(max_decoded_bytes=1 * 2**20))


def test_empty_and_nan_files_are_named(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty \(0 bytes\)"):
        load(empty)
    bad = tmp_path / "nan.wav"
    y = np.zeros(16000, np.float32)
    y[100] = np.nan
    sf.write(bad, y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or infinite samples"):
        load(bad)
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN"):
        load_channels(bad)


def test_name_patterns_refuse_a_trailing_newline():
    pytest.importorskip("fastapi")
    from earshot.service.ingest import check_client_id
    from earshot.service.registry import check_name
    from earshot.service.audio import ApiError

    assert check_name("fan", "machine") == "fan"
    with pytest.raises(ParameterError):
        check_name("fan\n", "machine")
    assert check_client_id("a-1") == "a-1"
    with pytest.raises(ApiError):
        check_client_id("a-1\n")


# ---------------------------------------------------------------------- the service
fastapi = pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from earshot.service.app import create_app  # noqa: E402
from earshot.service.settings import Settings  # noqa: E402
from helpers.service import free_port, tiny_model, wav_bytes  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(models_dir=tiny_model(tmp_path_factory), data_dir=tmp_path_factory.mktemp("hard") / "data",
                        max_decoded_mb=1.0)
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client, data: bytes, name: str = "x.wav"):
    return client.post("/score", files={"file": (name, data)})


@pytest.mark.parametrize("rate", [1_000_003, 2_147_483_647])
def test_service_refuses_header_rate_bombs_with_one_line(client, tmp_path, rate):
    r = _post(client, crafted_wav(tmp_path / "b.wav", sr=rate).read_bytes())
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "\n" not in detail and "outside the accepted 8000-192000 Hz" in detail and "upload 'x.wav'" in detail


def test_service_refuses_a_decoded_size_bomb_with_413(client):
    big = wav_bytes(np.full((16000 * 3, 8), 0.25, np.float32), sr=16000, fmt="FLAC")  # 1.5 MiB decoded > 1 MiB
    r = _post(client, big, "b.flac")
    assert r.status_code == 413 and "decodes to" in r.json()["detail"]


def test_service_wording_formats_and_empty(client):
    r = _post(client, b"")
    assert r.status_code == 422 and r.json()["detail"] == "upload 'x.wav': empty (0 bytes)"
    caf = wav_bytes(np.full(16000, 0.1, np.float32), fmt="CAF")
    r = _post(client, caf, "x.caf")
    assert r.status_code == 422
    assert all(f in r.json()["detail"] for f in ("wav", "flac", "mp3", "ogg", "aiff"))


def test_ids_beyond_sqlite_are_4xx_not_500(client):
    huge = 2**63
    assert client.get(f"/snippets/{huge - 1}").status_code == 404
    for r in (client.get(f"/snippets/{huge}"), client.get(f"/snippets/{10**30}/spectrogram.png"),
              client.post(f"/snippets/{huge}/label", json={"label": "normal"}),
              client.get(f"/machines/fan/snippets?before_id={huge}")):
        assert r.status_code == 422, r.text


def test_machine_name_with_a_newline_is_refused(client):
    r = client.post("/machines/fan%0A/snippets", files={"file": ("a.wav", wav_bytes(np.full(16000, 0.1, np.float32)))})
    assert r.status_code == 422, r.text
    assert client.get("/machines").json() is not None


def test_spectrogram_is_rendered_once(client, monkeypatch):
    from earshot.service.routes import snippets

    rng = np.random.default_rng(3)
    r = client.post("/machines/fan/snippets", files={"file": ("a.wav", wav_bytes(rng.uniform(-.3, .3, 16000 * 2)))})
    assert r.status_code in (200, 201), r.text
    calls = []
    real = snippets.decode
    monkeypatch.setattr(snippets, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    sid = r.json()["id"]
    first = client.get(f"/snippets/{sid}/spectrogram.png")
    second = client.get(f"/snippets/{sid}/spectrogram.png")
    assert first.status_code == 200 and first.content == second.content and first.content[:4] == b"\x89PNG"
    assert len(calls) <= 1  # 0 when an earlier test drew the same audio


# ---------------------------------------------------------------------- slow clients
@pytest.fixture
def server():
    import uvicorn

    from earshot.service.server import server_options

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            msg = await receive()
            more = msg.get("more_body", False) and msg["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    settings = Settings(port=free_port(), timeout_header_s=0.5, timeout_body_s=0.5)
    srv = uvicorn.Server(uvicorn.Config(app, **server_options(settings, log_level="warning")))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield settings.port
    srv.should_exit = True
    thread.join(10)


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(15)  # far above the 0.5 s deadlines: a hang fails, speed is not asserted
    try:
        while sock.recv(4096):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def test_slow_headers_body_and_silence_are_dropped(server):
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert _closed_by_server(s)
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")  # body never finished
        assert _closed_by_server(s)
    with socket.create_connection(("127.0.0.1", server)) as s:  # silent connection
        assert _closed_by_server(s)
    with socket.create_connection(("127.0.0.1", server)) as s:  # a prompt client is answered
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.settimeout(15)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
