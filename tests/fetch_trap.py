"""An HTTP server on 127.0.0.1 that records every request of any method: a trap for fetches.

It answers with a JSON Schema whose enum holds `SECRET`, so a fetch that went through would
show up both here and, quoted in an error message, in what the caller sees.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "fetched-schema-7f3a9c"


class FetchTrap:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FetchTrap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/schema.json") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                trap.paths.append(self.path)
                body = json.dumps({"enum": [SECRET]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/schema+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
