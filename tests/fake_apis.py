"""Small real HTTP servers that speak third-party APIs' protocols, on loopback only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class SentimentAPI:
    """The Hugging Face Inference API's text-classification shape.

    Texts steer it: ``FLAKY`` answers 429 to the first two requests with that
    exact text, then succeeds (so a test with a text of its own passes however
    often it runs), ``BROKEN`` answers 500 with the caller's key in the body (it
    must never leak), ``HUGE`` answers 16 MB.
    """

    key: str
    url: str = ""
    seen: list[dict] = field(default_factory=list)


def _handler(api: SentimentAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth = self.headers.get("Authorization", "")
            api.seen.append({"body": body, "authorization": auth})
            if auth != f"Bearer {api.key}":
                return self._answer(401, {"error": "Invalid credentials in Authorization header"})
            text = body.get("inputs", "")
            if "FLAKY" in text and sum(r["body"] == body for r in api.seen) <= 2:
                return self._answer(429, {"error": "rate limited"})
            if "BROKEN" in text:
                return self._answer(500, {"error": f"internal error for key {api.key}"})
            if "HUGE" in text:  # far past any sane answer: the client must stop reading
                return self._answer(200, [[{"label": "POSITIVE" * 1000, "score": 0.5}] * 2000])
            positive = 0.97 if any(w in text.lower() for w in ("love", "great", "good")) else 0.08
            return self._answer(200, [[{"label": "POSITIVE", "score": positive},
                                       {"label": "NEGATIVE", "score": round(1 - positive, 2)}]])

    return Handler


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on a free loopback port in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_sentiment_api(key: str) -> Iterator[SentimentAPI]:
    api = SentimentAPI(key=key)
    with serving(_handler(api)) as url:
        api.url = f"{url}/models/sentiment"
        yield api


def png_bytes(size: int = 64) -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (size, size), (240, 120, 20)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class NanoBananaAPI:
    """The NanoBanana generate / record-info protocol. Prompts steer it: ``FAIL`` ends with
    successFlag 2; otherwise the task reports 0 (generating) once, then 1 with an image URL."""

    key: str
    url: str = ""
    generated: list[dict] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)


def _nanobanana_handler(api: NanoBananaAPI) -> type[BaseHTTPRequestHandler]:
    image = png_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _json(self, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {api.key}":
                return True
            self._json({"code": 401, "msg": "You do not have access permissions", "data": None})
            return False

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._authorised():
                return
            task_id = f"nb{len(api.generated)}"
            api.generated.append({**body, "taskId": task_id})
            self._json({"code": 200, "msg": "success", "data": {"taskId": task_id}})

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path.startswith("/images/"):
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)
                return
            if not self._authorised():
                return
            task_id = query.removeprefix("taskId=")
            request = next(g for g in api.generated if g["taskId"] == task_id)
            api.polls[task_id] = api.polls.get(task_id, 0) + 1
            if "FAIL" in request["prompt"]:
                data = {"taskId": task_id, "successFlag": 2, "errorMessage": "content policy violation"}
            elif api.polls[task_id] < 2:
                data = {"taskId": task_id, "successFlag": 0}
            else:
                data = {"taskId": task_id, "successFlag": 1,
                        "response": {"resultImageUrl": f"{api.url}/images/{task_id}.png"}}
            self._json({"code": 200, "msg": "success", "data": data})

    return Handler


@contextmanager
def serve_nanobanana_api(key: str) -> Iterator[NanoBananaAPI]:
    api = NanoBananaAPI(key=key)
    with serving(_nanobanana_handler(api)) as api.url:
        yield api
