"""A real HTTP server laid out as the model hub: ``/<repo>/resolve/<revision>/<path>`` from a folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from voicemoded.engines.catalog import HubSource


class Hub:
    """Serves ``root`` (files placed with :meth:`put`); a path in ``endless`` gets an unending body
    without a length, as a hostile server would send."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.endless: set[str] = set()
        self.requests: list[str] = []
        self.url = ""

    def put(self, source: HubSource, path: str, data: bytes | Path) -> Path:
        target = self.root / source.repo / "resolve" / source.revision / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            target.symlink_to(data)
        else:
            target.write_bytes(data)
        return target

    @contextmanager
    def serving(self) -> Iterator[Hub]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.requests.append(self.path)
                if self.path in hub.endless:
                    self.send_response(200)
                    self.end_headers()
                    block = b"\0" * 65536
                    try:
                        while True:
                            self.wfile.write(block)
                    except OSError:
                        return  # the client hung up: what it should do
                file = hub.root / self.path.lstrip("/")
                if not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
