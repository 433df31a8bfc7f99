"""A real HTTP proxy in front of the real API that fails chosen requests, as a load balancer or an
overloaded service would: 429 or 503 with ``Retry-After`` before the API sees the request, or
503 after the API has done the work (the answer is lost on the way back).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Fault:
    method: str
    path: str
    status: int
    retry_after: str | None = None
    after_forwarding: bool = False   # the API handles the request; the client gets the error instead


@dataclass
class Seen:
    method: str
    path: str
    idempotency_key: str | None
    answered: int


@dataclass
class FlakyProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.upstream, timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.handle(self, body)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, method: str, path: str, status: int, *, retry_after: str | None = None,
             after_forwarding: bool = False) -> None:
        """Fail the next ``method`` request whose path starts with ``path``, once."""
        with self._lock:
            self.faults.append(Fault(method, path, status, retry_after, after_forwarding))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and path.startswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        method, path = handler.command, handler.path
        fault = self._take_fault(method, path)
        if fault is None or fault.after_forwarding:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream = self._http.request(method, path, content=body, headers=headers)
        if fault is not None:
            error = {"error": {"code": "unavailable" if fault.status == 503 else "rate_limited",
                               "message": f"the proxy answered {fault.status}", "param": None}}
            status, payload, extra = fault.status, json.dumps(error).encode(), {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                extra["Retry-After"] = fault.retry_after
        else:
            status, payload = upstream.status_code, upstream.content
            extra = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        with self._lock:
            self.seen.append(Seen(method, path, handler.headers.get("Idempotency-Key"), status))
        handler.send_response(status)
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def requests(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()
