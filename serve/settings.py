"""What the HTTP server allows: request limits, the request deadline and the API key.

The batcher's own limits (batch size, wait, queue) live in `BatcherConfig`; these are the
ones only HTTP has. Like every vigil config this is a frozen dataclass checked when built,
and it reads no environment: the command line reads the key from the variable it is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.runtime.checks import require_int, require_seconds

__all__ = ["ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """Limits and authentication of the HTTP front end.

    Durations (`*_s`) are in seconds, as everywhere in the library and in `vigil serve`'s
    options of the same names.

    Attributes:
        max_body_bytes: Largest request body; a bigger one is refused with 413 before it
            is parsed, whether it announces its length or arrives chunked.
        max_header_bytes: Most bytes of a request's head (request line and headers) held
            while it is incomplete; past it the answer is 400 and the connection closes,
            before the app sees anything. h11 checks between reads, so a head that arrives
            whole in one read (at most 256 KiB) is still parsed.
        max_texts: Most texts (or items) in one request.
        max_text_chars: Longest text, in characters. The model reads only 32 tokens, so a
            long text costs tokenization time and no accuracy.
        timeout_s: Deadline of one request, counted from its arrival at the server (when
            the app first sees it); past it the request gets 504 and its texts still queued
            are dropped before compute. Time spent reading a slow body counts.
        read_timeout_s: A connection must send a request's headers, and then its body,
            each within this many seconds, or it is closed (headers) or answered 408
            (body). Without it, half-sent requests hold sockets and shutdown forever.
        keep_alive_s: An idle keep-alive connection is closed after this many seconds.
        graceful_shutdown_s: On SIGTERM, requests still open after this many seconds are
            cancelled so that the process exits.
        max_concurrency: Most open connections plus running requests; beyond it new
            requests get 503 at once. Put a reverse proxy in front to hold more clients.
        retry_after_s: Seconds a client is told to wait (Retry-After) after a 503.
        api_key: When set, every route except /healthz and /readyz needs the header
            `Authorization: Bearer <api_key>`. That includes /metrics, which reveals traffic
            volumes; Prometheus sends the key through its scrape config's `authorization`.
            Probes stay open because orchestrators call them without credentials.
    """

    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 16 << 10  # h11's own default: browsers and proxies send far less
    max_texts: int = 256
    max_text_chars: int = 4096
    timeout_s: float = 10.0
    retry_after_s: int = 1
    read_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    graceful_shutdown_s: float = 30.0
    max_concurrency: int = 1024
    api_key: str | None = field(default=None, repr=False)  # settings end up in logs

    def __post_init__(self) -> None:
        require_int("max_body_bytes", self.max_body_bytes)
        require_int("max_header_bytes", self.max_header_bytes)
        require_int("max_texts", self.max_texts)
        require_int("max_text_chars", self.max_text_chars)
        require_seconds("timeout_s", self.timeout_s, positive=True)
        require_int("retry_after_s", self.retry_after_s)
        require_seconds("read_timeout_s", self.read_timeout_s, positive=True)
        require_seconds("keep_alive_s", self.keep_alive_s, positive=True)
        require_seconds("graceful_shutdown_s", self.graceful_shutdown_s, positive=True)
        require_int("max_concurrency", self.max_concurrency)
        if self.api_key is not None and not isinstance(self.api_key, str):
            raise TypeError(f"api_key must be a str or None, got {type(self.api_key).__name__}")
        if self.api_key == "":
            raise ValueError("api_key must not be empty; use None to turn authentication off")
        if self.api_key is not None and self.api_key != self.api_key.strip():
            raise ValueError("api_key must not start or end with whitespace (a trailing newline?)")
