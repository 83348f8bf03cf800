"""`vigil serve`: the HTTP server, as a command.

Thin, like every subcommand: it turns options into `BatcherConfig` and `ServeSettings`,
opens the classifier (so a bad artifact fails here, as one line, before anything listens)
and hands both to `vigil.serve`. It is the only place that reads the API key from the
environment; the library takes the key as a setting.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from vigil.cli.common import fails_cleanly
from vigil.runtime.providers import PROVIDER_CHOICES

__all__ = ["serve"]


@click.command("serve")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; the default serves this machine only, 0.0.0.0 every network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True,
              help="Execution provider; auto takes the fastest available.")
@click.option("--variant", help="Artifact variant (default: the provider's natural one, e.g. int8 on the CPU).")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sessions of the model, each computing one batch at a time: that many batches in flight. On a GPU "
                   "one computes while the host feeds another; on the CPU each replica takes --threads cores.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Intra-op threads per session [default: one per physical core on the CPU, one on a GPU, one "
                   "per replica when there are several].")
# Limits left unset keep the library's defaults (BatcherConfig, ServeSettings), quoted in the help.
@click.option("--max-batch-size", type=click.IntRange(min=1), help="Most texts in one model run [default: 64].")
@click.option("--max-wait-ms", type=click.FloatRange(min=0),
              help="Opt-in delay: how long, in milliseconds, a batch waits for more texts after its first; 0 runs "
                   "what is queued as soon as the model is free [default: 0].")
@click.option("--queue-size", type=click.IntRange(min=1),
              help="Most texts waiting for a batch; beyond it requests get 503 [default: 4096].")
@click.option("--max-body-bytes", type=click.IntRange(min=1), help="Largest request body [default: 1048576].")
@click.option("--max-header-bytes", type=click.IntRange(min=1),
              help="Most bytes of a request's unfinished head (request line and headers); beyond them the "
                   "answer is 400 [default: 16384].")
@click.option("--max-texts", type=click.IntRange(min=1), help="Most texts (or items) per request [default: 256].")
@click.option("--max-text-chars", type=click.IntRange(min=1), help="Longest text, in characters [default: 4096].")
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True),
              help="Request deadline in seconds, from its arrival; past it the answer is 504 and queued texts are dropped "
                   "[default: 10].")
@click.option("--read-timeout-s", type=click.FloatRange(min=0, min_open=True),
              help="Seconds a client has to send a request's headers, then its body [default: 10].")
@click.option("--keep-alive-s", type=click.FloatRange(min=0, min_open=True),
              help="Idle keep-alive connections are closed after this many seconds [default: 5].")
@click.option("--graceful-shutdown-s", type=click.FloatRange(min=0, min_open=True),
              help="On SIGTERM, requests still open after this many seconds are cancelled [default: 30].")
@click.option("--max-concurrency", type=click.IntRange(min=1),
              help="Most open connections and requests; beyond it requests get 503 [default: 1024].")
@click.option("--api-key-env", metavar="VAR",
              help="Require 'Authorization: Bearer KEY' on /v1/* and /metrics, KEY read from environment variable "
                   "VAR. /healthz and /readyz stay open for probes.")
@fails_cleanly
def serve(
    artifact: Path,
    host: str,
    port: int,
    provider: str,
    variant: str | None,
    replicas: int,
    threads: int | None,
    max_batch_size: int | None,
    max_wait_ms: float | None,
    queue_size: int | None,
    max_body_bytes: int | None,
    max_header_bytes: int | None,
    max_texts: int | None,
    max_text_chars: int | None,
    timeout_s: float | None,
    read_timeout_s: float | None,
    keep_alive_s: float | None,
    graceful_shutdown_s: float | None,
    max_concurrency: int | None,
    api_key_env: str | None,
) -> None:
    """Serve the artifact directory ARTIFACT over HTTP (see /docs once it runs)."""
    from vigil.runtime import BatcherConfig, Classifier
    from vigil.serve import ServeSettings, create_app, run

    limits = _given(
        max_body_bytes=max_body_bytes, max_header_bytes=max_header_bytes, max_texts=max_texts,
        max_text_chars=max_text_chars, timeout_s=timeout_s,
        read_timeout_s=read_timeout_s, keep_alive_s=keep_alive_s, graceful_shutdown_s=graceful_shutdown_s,
        max_concurrency=max_concurrency,
    )
    settings = ServeSettings(**limits, api_key=_api_key(api_key_env))
    max_wait_s = None if max_wait_ms is None else max_wait_ms / 1000
    batcher = BatcherConfig(**_given(max_batch_size=max_batch_size, max_wait_s=max_wait_s, queue_size=queue_size))
    # GPU sessions are built for batches up to this size, so it must cover the batcher's.
    # A stand-in artifact warns here, and every answer says `random_weights: true`.
    # spin=False: between runs ONNX Runtime's threads sleep, leaving the cores to the HTTP loop.
    classifier = Classifier.open(
        artifact, provider=provider, variant=variant, max_batch_size=batcher.max_batch_size, spin=False,
        replicas=replicas, threads=threads,
    )
    with classifier:
        run(create_app(classifier, batcher, settings), host=host, port=port)


def _given(**options: object) -> dict[str, object]:
    """The options the user set; the others keep the library's defaults."""
    return {name: value for name, value in options.items() if value is not None}


def _api_key(variable: str | None) -> str | None:
    """The key from environment variable VARIABLE; refusing to start beats serving unprotected.

    Surrounding whitespace is dropped: a key file read with `$(cat key)` or a secret mounted
    with its trailing newline would otherwise never match what clients send.
    """
    if variable is None:
        return None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise click.BadParameter(f"environment variable {variable} is not set or empty", param_hint="--api-key-env")
    return key
