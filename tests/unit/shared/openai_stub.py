"""An OpenAI-compatible chat server on localhost that answers like a reasoning model.

Real DSPy and LiteLLM talk to it over HTTP, so tests see exactly what a model that sends
``reasoning_content`` (DeepSeek-R1, Qwen3 with thinking) makes DSPy return.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared.lm import ScriptedLM

REASONING = "The user wants entities; I list the capitalized names."


def answer(messages: list[dict]) -> dict:
    """The assistant message: the scripted extractor's text plus reasoning; reasoning only for "Havana"
    (a model that spent its tokens thinking), and a NUL byte in the text for "Oslo"."""
    prompt = messages[-1]["content"]
    text = ScriptedLM("scripted/extract").complete(messages)
    if "Havana" in prompt:
        text = None
    elif "Oslo" in prompt:
        text = text.replace("<|COMPLETE|>", "\x00<|COMPLETE|>")
    return {"role": "assistant", "content": text, "reasoning_content": REASONING}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = json.dumps({
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": answer(body["messages"]), "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


@contextmanager
def reasoning_server():
    """The server's base URL (``.../v1``) while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
