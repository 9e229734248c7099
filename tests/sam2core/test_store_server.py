"""A real HTTP server on 127.0.0.1 for the model-store tests (Range support, cut connections),
plus tests that the server itself behaves like a Range-capable file host."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import io
import re
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

import pytest
import pytest
import torch

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def make_checkpoint_bytes(seed: int = 0, numel: int = 64_000) -> bytes:
    """A small official-layout checkpoint (``{"model": state_dict}``) serialised by torch.save."""
    generator = torch.Generator().manual_seed(seed)
    state = {"encoder.weight": torch.randn(numel // 100, 100, generator=generator),
             "encoder.bias": torch.randn(100, generator=generator)}
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ServerBehaviour:
    """Knobs a test turns: cut the next `cuts` responses after `cut_after` bytes, ignore Range, tamper bytes."""

    cut_after: Optional[int] = None
    cuts: int = 0
    ignore_range: bool = False
    tamper: bool = False
    requests: list = field(default_factory=list)  # (path, Range header or None)


class CheckpointServer:
    """Serves ``files`` (name -> bytes) at ``self.url`` from a thread; use as a context manager."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.behaviour = ServerBehaviour()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                behaviour = server.behaviour
                range_header = self.headers.get("Range")
                behaviour.requests.append((self.path, range_header))
                if self.path.startswith("/redirect/"):  # like Hugging Face's resolve/ -> CDN
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/redirect"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                if behaviour.tamper:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                start = 0
                match = _RANGE.match(range_header or "")
                if match and not behaviour.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if behaviour.cuts > 0 and behaviour.cut_after is not None:
                    behaviour.cuts -= 1
                    self.wfile.write(body[: behaviour.cut_after])
                    self.wfile.flush()
                    self.close_connection = True  # drop the connection mid-body
                    return
                self.wfile.write(body)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "CheckpointServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def test_server_serves_the_requested_range():
    data = make_checkpoint_bytes()
    with CheckpointServer({"a.pt": data}) as server:
        request = urllib.request.Request(f"{server.url}/a.pt", headers={"Range": "bytes=100-"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 206
            assert response.read() == data[100:]


def test_server_cut_delivers_only_the_first_bytes():
    data = make_checkpoint_bytes()
    with CheckpointServer({"a.pt": data}) as server:
        server.behaviour.cut_after, server.behaviour.cuts = 1000, 1
        with urllib.request.urlopen(f"{server.url}/a.pt", timeout=10) as response:
            with pytest.raises(http.client.IncompleteRead) as info:
                response.read()
    assert len(info.value.partial) == 1000
