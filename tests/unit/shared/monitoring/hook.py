"""A local webhook receiver (http.server in a thread) for the unit and integration tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HookServer:
    """Records every POST as (wall-clock time when answered, JSON body). ``answer(body) -> (delay_s, status)`` decides
    how long to hang and what to answer; by default at once, 200."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda body: (0.0, 200))
        self.received: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                delay, status = hook.answer(body)
                time.sleep(delay)
                with hook.lock:
                    hook.received.append((time.time(), body))
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def events(self, kind: str | None = None) -> list[dict]:
        with self.lock:
            return [b for _, b in self.received if kind is None or b["event"] == kind]
