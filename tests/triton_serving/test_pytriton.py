"""`vigil triton-serve` for real: a tritonserver started by PyTriton, spoken to with tritonclient.

PyTriton pins numpy<2, so the server runs from its own venv (.venv-triton, see
vigil.serve.triton.pytriton_app) as a subprocess on loopback ports; these tests, in the main
venv, compare its answers with the local engine's. They skip where .venv-triton is absent.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import wait_for

from vigil.cli.triton import triton_serve
from vigil.runtime import Classifier

TRITON_PYTHON = Path(__file__).resolve().parents[2] / ".venv-triton" / "bin" / "python"
APP = "vigil.cli"
STARTUP_TIMEOUT_S = 120
GATED_TRITON = Path(__file__).with_name("gated_triton.py")
QUEUE_DELAY_US = 100_000  # any value: holding the model, not this delay, lets requests meet in the queue
MAX_BATCH = 8
# fp32, the exact variant (the tiny stand-in has no int8), compared with atol 1e-5.
VARIANT = "fp32"

TWEETS = [
    "Just landed in Madrid! ✈️ #travel",
    "@user check this out https://example.com/x",
    "Lluvia otra vez en Bogotá 🌧️",
    "東京は今日も暑い",
    "",
    "RT @news: breaking story developing",
    "a" * 500,
]


@dataclass(frozen=True)
class Server:
    http: str
    grpc: str
    metrics: str
    process: subprocess.Popen
    log: Path


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on loopback; all held open at once, so distinct."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def needs_triton_venv() -> None:
    if not TRITON_PYTHON.exists():
        pytest.skip(f"{TRITON_PYTHON} is absent: create .venv-triton (see vigil.serve.triton.pytriton_app)")
    pytest.importorskip("tritonclient.http", reason="the client side needs tritonclient[grpc,http]")
    pytest.importorskip("tritonclient.grpc", reason="the client side needs tritonclient[grpc,http]")


def wait_until_ready(server: Server) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"triton-serve exited with {server.process.returncode}:\n{tail(server.log)}")
        try:
            if client.is_server_ready() and client.is_model_ready("vigil"):
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.5)
    pytest.fail(f"triton-serve not ready after {STARTUP_TIMEOUT_S} s:\n{tail(server.log)}")


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen) -> int:
    """SIGTERM, as a service manager would; SIGKILL the whole group if that is ignored."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """triton-serve on the tiny artifact (its model can be held, see gated_triton.py); stopped
    with SIGTERM, which must end every process."""
    needs_triton_venv()
    http, grpc, metrics = free_ports(3)
    log = tmp_path_factory.mktemp("pytriton") / "server.log"
    command = [
        str(TRITON_PYTHON), str(GATED_TRITON), "triton-serve", str(tiny_artifact),
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
        "--max-batch-size", str(MAX_BATCH), "--max-queue-delay-us", str(QUEUE_DELAY_US), "--variant", VARIANT,
    ]
    with open(log, "wb") as out:
        # Its own session, so that tritonserver and the backend stub can be found and killed.
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Server(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"http://127.0.0.1:{metrics}/metrics", process, log)
    try:
        wait_until_ready(running)
        yield running
    finally:
        if process.poll() is None:
            returncode = stop(process)
            assert returncode == 0, f"triton-serve exited with {returncode} on SIGTERM:\n{tail(log)}"
        deadline = time.monotonic() + 30
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"tritonserver outlived triton-serve:\n{tail(log)}")


@pytest.fixture(scope="module")
def engine(tiny_artifact: Path) -> Iterator[Classifier]:
    with pytest.warns(UserWarning, match="random-weight stand-in"):
        clf = Classifier.open(tiny_artifact, provider="cpu", variant=VARIANT)
    with clf:
        yield clf


def text_input(module, texts: list[str] | list[bytes]):
    data = np.array([[t.encode("utf-8") if isinstance(t, str) else t] for t in texts], dtype=np.object_)
    tensor = module.InferInput("text", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


def check_answer(engine: Classifier, texts: list[str], scores: np.ndarray, labels: np.ndarray) -> None:
    assert scores.dtype == np.float32 and scores.shape == (len(texts), len(engine.labels))
    np.testing.assert_allclose(scores, engine.predict(texts), rtol=0, atol=1e-5)
    assert labels.dtype == np.bool_
    np.testing.assert_array_equal(labels, engine.decide(scores))


def metric(server: Server, name: str) -> float:
    """One counter of the vigil model, read from Triton's Prometheus endpoint."""
    with urllib.request.urlopen(server.metrics, timeout=10) as response:
        text = response.read().decode("utf-8")
    match = re.search(rf'^{name}\{{[^}}]*model="vigil"[^}}]*\}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for model vigil is not in the metrics:\n{text[:2000]}"
    return float(match.group(1))


def quiet_metric(server: Server, name: str) -> float:
    """The counter once it holds still for 0.5 s (at most 10 s): a baseline read while the last
    test's request is still being released would be one short and fail the count after it."""
    deadline = time.monotonic() + 10
    value = metric(server, name)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if (later := metric(server, name)) == value:
            break
        value = later
    return value


def settled_metric(server: Server, name: str, expected: float) -> float:
    """The counter once it reaches EXPECTED, or after 10 s: Triton counts a request when it
    releases it, a moment after the client already has the response."""
    deadline = time.monotonic() + 10
    while (value := metric(server, name)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


# --- tests ------------------------------------------------------------------------------


def test_model_metadata(server: Server) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http)
    meta = client.get_model_metadata("vigil")
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("text", "BYTES", [-1, 1])]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
        ("scores", "FP32", [-1, 6]),
        ("labels", "BOOL", [-1, 6]),
    ]
    config = client.get_model_config("vigil")
    assert config["max_batch_size"] == MAX_BATCH
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == QUEUE_DELAY_US


def test_http_matches_the_engine(server: Server, engine: Classifier) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http)
    result = client.infer("vigil", [text_input(httpclient, TWEETS)])
    check_answer(engine, TWEETS, result.as_numpy("scores"), result.as_numpy("labels"))


def test_grpc_matches_the_engine(server: Server, engine: Classifier) -> None:
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.grpc) as client:
        result = client.infer("vigil", [text_input(grpcclient, TWEETS)])
    check_answer(engine, TWEETS, result.as_numpy("scores"), result.as_numpy("labels"))


def test_concurrent_requests_are_batched_by_triton(server: Server, engine: Classifier) -> None:
    """The model is held while the requests arrive, so they wait in Triton's queue however
    slowly they come; once let go, Triton must batch them (a run per request would fail)."""
    import tritonclient.http as httpclient

    texts = [f"request {i}: {TWEETS[i % len(TWEETS)]}" for i in range(2 * MAX_BATCH)]
    requests_before = quiet_metric(server, "nv_inference_count")
    runs_before = quiet_metric(server, "nv_inference_exec_count")

    client = httpclient.InferenceServerClient(server.http, concurrency=len(texts))
    tell(server, "hold")
    try:
        pending = [client.async_infer("vigil", [text_input(httpclient, [text])]) for text in texts]
        wait_for(lambda: all_waiting(server, len(texts)), "every request to be held in the model or queued in Triton")
    finally:
        tell(server, "open")
    results = [request.get_result() for request in pending]

    scores = np.concatenate([r.as_numpy("scores") for r in results])
    labels = np.concatenate([r.as_numpy("labels") for r in results])
    check_answer(engine, texts, scores, labels)
    assert settled_metric(server, "nv_inference_count", requests_before + len(texts)) == requests_before + len(texts)
    runs = quiet_metric(server, "nv_inference_exec_count") - runs_before
    assert 2 <= runs < len(texts), f"{len(texts)} concurrent requests took {runs} model runs"


def tell(server: Server, line: str) -> None:
    """Send LINE ("hold" or "open") to gated_triton.py's infer function."""
    assert server.process.stdin is not None
    server.process.stdin.write(f"{line}\n".encode())
    server.process.stdin.flush()


def all_waiting(server: Server, count: int) -> bool:
    """COUNT requests wait: a batch is held in the model (so none can finish), the rest queued."""
    held = held_requests(server)
    return held > 0 and held + metric(server, "nv_inference_pending_request_count") == count


def held_requests(server: Server) -> int:
    """Requests of the batch held in the model, from gated_triton.py's "held N" line (0: none yet)."""
    found = re.findall(r"^held (\d+)$", server.log.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
    return int(found[-1]) if found else 0


def test_invalid_utf8_is_an_error_response_not_a_crash(server: Server, engine: Classifier) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    http = httpclient.InferenceServerClient(server.http)
    with pytest.raises(InferenceServerException, match="must be UTF-8"):
        http.infer("vigil", [text_input(httpclient, [b"caf\xe9 latin-1"])])
    with grpcclient.InferenceServerClient(server.grpc) as grpc, pytest.raises(InferenceServerException, match="UTF-8"):
        grpc.infer("vigil", [text_input(grpcclient, [b"\xff\xfe"])])

    assert http.is_server_live() and http.is_model_ready("vigil")
    result = http.infer("vigil", [text_input(httpclient, ["still serving"])])
    check_answer(engine, ["still serving"], result.as_numpy("scores"), result.as_numpy("labels"))


def test_metrics_count_successes_and_failures(server: Server) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(server.http)
    successes = quiet_metric(server, "nv_inference_request_success")
    failures = quiet_metric(server, "nv_inference_request_failure")
    client.infer("vigil", [text_input(httpclient, ["counted"])])
    with pytest.raises(InferenceServerException):
        client.infer("vigil", [text_input(httpclient, [b"\xc3"])])

    assert settled_metric(server, "nv_inference_request_success", successes + 1) == successes + 1 > 1
    assert settled_metric(server, "nv_inference_request_failure", failures + 1) == failures + 1


# --- the command without a server ---------------------------------------------------------


def test_bad_options_fail_before_starting_triton(tiny_artifact: Path) -> None:
    needs_triton_venv()
    command = [str(TRITON_PYTHON), "-m", APP, "triton-serve", str(tiny_artifact), "--http-port", "9000", "--grpc-port", "9000"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "the three ports must differ" in done.stderr


@pytest.mark.skipif(importlib.util.find_spec("pytriton") is not None, reason="PyTriton is installed here")
def test_without_pytriton_the_command_says_how_to_install_it(tiny_artifact: Path) -> None:
    result = CliRunner().invoke(triton_serve, [str(tiny_artifact)])
    assert result.exit_code == 1
    assert "pytriton is not installed" in result.stderr and ".venv-triton" in result.stderr
    assert sys.modules.get("pytriton") is None
