"""`vigil export-triton` and `vigil triton-serve`: the two ways to put vigil behind Triton.

`export-triton` writes a model repository for Triton's ONNX Runtime backend (token ids in,
TensorRT on a GPU); `triton-serve` runs vigil's own engine, text in, inside a Triton server
through PyTriton. Both commands only parse options and call `vigil.serve.triton`; their
optional dependencies are imported inside them, with an install hint when missing.

Where the `vigil` script is not on PATH, `python -m vigil.cli triton-serve` runs it.
Errors end as the one `error: ...` line and exit status 1, as for every command.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import ModuleType

import click

from vigil.cli.common import fails_cleanly, warn_if_standin
from vigil.runtime.manifest import Manifest

__all__ = ["export_triton", "triton_serve"]

_PYTRITON_HINT = (
    "triton-serve needs PyTriton (pip install nvidia-pytriton), which pins numpy<2: "
    "install it in a venv of its own, .venv-triton, as the docstring of vigil.serve.triton.pytriton_app shows"
)


def _pytriton_app() -> ModuleType:
    """vigil's PyTriton app; PyTriton is no vigil extra (it pins numpy<2), so its own hint."""
    try:
        from vigil.serve.triton import pytriton_app
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "pytriton":
            raise  # not PyTriton: a real bug, keep its traceback
        raise click.ClickException(f"{exc.name} is not installed; {_PYTRITON_HINT}") from None
    return pytriton_app


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    """Parse `8,32,128`; whether each fits max_batch_size is TritonRepoConfig's to say."""
    if not value:
        return ()
    try:
        return tuple(int(item) for item in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected integers separated by commas, got {value!r}") from None


@click.command("export-triton")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="vigil", show_default=True, help="Model name: the directory REPO/NAME.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Largest batch Triton's dynamic batcher forms.")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0), default=2000, show_default=True,
              help="How long, in microseconds (Triton's unit), the batcher may hold a request to fill a batch.")
@click.option("--preferred-batch-sizes", callback=_batch_sizes, metavar="N,N,...",
              help="Batch sizes the batcher aims for (default: fill up to --max-batch-size).")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model instances per GPU.")
@click.option("--no-tensorrt", is_flag=True, help="Run on ONNX Runtime's CUDA provider, without TensorRT.")
@click.option("--trt-cache-dir", help="Absolute path, as the server sees it, for TensorRT's engine and timing "
              "caches (default: REPO/NAME/trt-cache on this machine).")
@click.option("--force", is_flag=True, help="Replace an existing REPO/NAME.")
@fails_cleanly
def export_triton(
    artifact: Path,
    repo: Path,
    name: str,
    max_batch_size: int,
    max_queue_delay_us: int,
    preferred_batch_sizes: tuple[int, ...],
    instances: int,
    no_tensorrt: bool,
    trt_cache_dir: str | None,
    force: bool,
) -> None:
    """Write a Triton model repository (ONNX Runtime backend, fp16, TensorRT) from ARTIFACT into REPO."""
    from vigil.export.triton import TritonRepoConfig, export_triton_repository

    try:
        config = TritonRepoConfig(
            name=name,
            max_batch_size=max_batch_size,
            max_queue_delay_us=max_queue_delay_us,
            preferred_batch_sizes=preferred_batch_sizes,
            instances=instances,
            tensorrt=not no_tensorrt,
            trt_cache_dir=trt_cache_dir,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    target = export_triton_repository(artifact, repo, config, force=force)
    warn_if_standin(Manifest.load(target).random_weights)
    click.echo(f"wrote Triton model {name!r} to {target}; serve it with: tritonserver --model-repository {repo}")


@click.command("triton-serve")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address of all three endpoints; 0.0.0.0 listens on every interface.")
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option("--metrics-port", type=int, default=8002, show_default=True, help="Prometheus metrics, at /metrics.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Largest batch Triton's dynamic batcher hands the engine.")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0), default=2000, show_default=True,
              help="How long, in microseconds (Triton's unit), the batcher may hold a request to fill a batch.")
@click.option("--variant", help="Manifest variant (default: the provider's natural one, int8 on a CPU). "
              "int8 is calibrated at export, so a text scores the same whatever it is batched with.")
@fails_cleanly
def triton_serve(
    artifact: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    max_batch_size: int,
    max_queue_delay_us: int,
    variant: str | None,
) -> None:
    """Serve ARTIFACT's engine, text in and scores out, in a Triton server (PyTriton) until stopped."""
    app = _pytriton_app()
    try:
        settings = app.PyTritonSettings(
            host=host,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            max_batch_size=max_batch_size,
            max_queue_delay_us=max_queue_delay_us,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    # SIGTERM (kill, systemd, containers) then stops Triton as cleanly as Ctrl-C does:
    # PyTriton stops the server and removes its workspace on KeyboardInterrupt.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    click.echo(
        f"starting Triton with model {app.MODEL_NAME!r}: HTTP {host}:{http_port}, gRPC {host}:{grpc_port}, "
        f"metrics http://{host}:{metrics_port}/metrics",
        err=True,
    )
    app.serve(artifact, settings, variant=variant)
