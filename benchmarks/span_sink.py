"""An OTLP/HTTP trace receiver on 127.0.0.1: the collector that Hookline's processes export to
while the benchmark measures tracing (`benchmark --otel`), and that the tests read spans from.

It answers `POST /v1/traces` as a collector does, decodes each request's protobuf, and counts the
spans by name; with `keep=True` it also keeps each span, decoded, for a test to look at.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as it arrived: ids in hexadecimal, as a `traceparent` writes them."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    kind: int
    attributes: dict[str, Any]
    failed: bool  # its status is ERROR
    status_message: str
    links: list[tuple[str, str]]  # (trace_id, span_id)
    service: str
    scope: str = ""
    resource: dict[str, Any] = field(default_factory=dict)


class SpanSink:
    """Counts (and with `keep`, keeps) the spans exported to it. Use it as a context manager."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SpanSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def spans(self, name: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self._spans if name is None or span.name == name]

    def wait_for(self, count: int, name: str, timeout: float = 20) -> list[ReceivedSpan]:
        """The spans called `name` once there are `count` of them; AssertionError after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.counts[name] >= count:
                    return [span for span in self._spans if span.name == name]
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} spans {name!r} within {timeout} s, got {self.counts[name]}"
        )

    def take(self, request: ExportTraceServiceRequest) -> None:
        received = [
            _received(span, scope_spans.scope.name, resource_spans.resource.attributes)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.requests += 1
            self.counts.update(span.name for span in received)
            if self.keep:
                self._spans.extend(received)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != TRACES_PATH:
                    self._answer(404, b"")
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                sink.take(request)
                self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: a benchmark exports thousands of requests

        return Handler


def _received(span: Span, scope: str, resource: Any) -> ReceivedSpan:
    resource_attributes = _attributes(resource)
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=span.kind,
        attributes=_attributes(span.attributes),
        failed=span.status.code == Status.STATUS_CODE_ERROR,
        status_message=span.status.message,
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        service=str(resource_attributes.get("service.name", "")),
        scope=scope,
        resource=resource_attributes,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None
