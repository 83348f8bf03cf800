"""The one right way to run a planned session: verified placement, and on a GPU fixed,
bound buffers per batch and sequence bucket.

`open_model` tries the plans of `vigil.runtime.providers` in order and returns a `Model`
whose session is verified to run on the planned provider. A model fetches only the logits
unless asked for the pooled output too (`run_with_pooled`): the graph computes both in one
pass, and classification never pays to copy the embedding. GPU models keep fixed device
buffers per (batch bucket, sequence bucket): batch buckets are powers of two up to
max_batch_size, sequence buckets the manifest's where the graph's sequence axis is
symbolic. Each is bound once through IO binding and refilled in place, because a CUDA graph
replays fixed addresses.

With `replicas=N`, `open_model` opens N sessions of the plan and returns `Replicas`, which
runs each batch on whichever is idle: N batches in flight, each replica with its own
buffers and CUDA graphs (graphs replay on the thread and stream that captured them, so two
batches in flight cannot share one session's). A `Service` gives it one dispatcher per
replica (`Model.concurrency`).

Every session is created with `enable_fallback=0`: otherwise onnxruntime's Python API
silently rebuilds a failed GPU session on the CPU without our provider options, and a
request for a GPU would quietly run on the CPU.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from queue import SimpleQueue

import numpy as np
import onnxruntime as ort

from .checks import require_int
from .errors import ArtifactError, ProviderError
from .manifest import INPUT_NAMES, Manifest
from .providers import GPU_DEVICE, SessionPlan

__all__ = [
    "GPU_SEQUENCE_BUCKETS", "BoundModel", "Model", "Replicas", "create_session", "open_model", "sequence_widths",
]

_log = logging.getLogger(__name__)
# Sequence buckets on a GPU, unless asked otherwise. Measured on an H200 (full-size model,
# benchmarks/results/gpu): bucketed bulk scoring ran at 0.93x of every batch at 32 and
# batch-1 latency did not improve, because the host (cleaning, tokenizing, grouping texts
# by length), not the GPU, bounds both there. A GPU slow enough that the model is what
# waits (compute-bound) may gain: `sequence_buckets=True` binds a slot per bucket.
GPU_SEQUENCE_BUCKETS = False
# ONNX Runtime's CUDA provider runs a graph id regularly twice (its arena settles), then
# captures it on the third run (`min_num_runs_before_cuda_graph_capture_ = 2`): warming each
# slot up that often captures every graph when the model opens, never under load.
_CAPTURE_RUN = 3


def create_session(
    path: Path, plan: SessionPlan, *, threads: int | None = None, spin: bool = True
) -> ort.InferenceSession:
    """An InferenceSession for PLAN, verified to run on PLAN's provider.

    THREADS None means one intra-op thread per physical core on the CPU, and one on a GPU,
    where the host only launches kernels and more threads would only compete with request
    threads. SPIN False stops intra-op threads spinning as soon as a run returns
    (`session.force_spinning_stop`): they still spin between the operators of a run, which
    wakes them fast (turning spinning off altogether measured 24 -> 29-31 ms for one tweet,
    full-size int8 on 2 cores), but between runs they sleep, leaving the cores to request
    threads, the batcher and the HTTP loop (one second of idle gaps cost 0.24 CPU-seconds
    instead of 0.82 with free spinning). Back-to-back bulk runs keep full spinning.

    Raises:
        ProviderError: ONNX Runtime cannot create it on that provider, or attached another.
        ArtifactError: The graph's inputs and outputs are not the artifact contract.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3  # our own log says which provider runs what
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if threads is not None:
        options.intra_op_num_threads = require_int("threads", threads, 1)
    elif plan.device == GPU_DEVICE:
        options.intra_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    if plan.cache_dir is not None:
        plan.cache_dir.mkdir(parents=True, exist_ok=True)
    providers = [(name, dict(provider_options)) for name, provider_options in plan.providers]
    try:
        session = ort.InferenceSession(str(path), options, providers=providers, enable_fallback=0)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument/... types
        raise ProviderError(f"{plan.describe()} cannot load {path.name}: {exc}") from exc
    _check_io(session, path)
    _check_placement(session, plan)
    return session


def _check_io(session: ort.InferenceSession, path: Path) -> None:
    inputs = {i.name: i.type for i in session.get_inputs()}
    outputs = [o.type for o in session.get_outputs()]
    if inputs != dict.fromkeys(INPUT_NAMES, "tensor(int64)") or outputs[:1] != ["tensor(float)"]:
        raise ArtifactError(
            f"{path} must take int64 {list(INPUT_NAMES)} and return float logits; "
            f"it takes {inputs} and returns {outputs}"
        )


def _check_placement(session: ort.InferenceSession, plan: SessionPlan) -> None:
    """Refuse a session whose graph does not actually run on the planned provider."""
    attached = session.get_providers()
    if attached[0] != plan.provider:
        raise ProviderError(f"asked ONNX Runtime for {plan.provider}, it attached {attached}")
    # get_providers() only lists registration; the assignment says where nodes really run.
    # Older onnxruntime versions have no assignment record: then registration must do.
    assignment = getattr(session, "get_provider_graph_assignment_info", lambda: [])()
    nodes = Counter(subgraph.ep_name for subgraph in assignment for _ in subgraph.get_nodes())
    if nodes and not nodes[plan.provider]:
        raise ProviderError(f"{plan.describe()}: no node was assigned to it (placement {dict(nodes)})")
    _log.info("%s: nodes per provider %s", plan.describe(), dict(nodes) or "not recorded")


class Model:
    """A verified session that maps token ids and mask to float32 logits, and on request to
    the pooled output as well.

    Thread-safe; this base class runs any batch as it is, as the CPU provider wants.

    Attributes:
        sequence_buckets: The sequence lengths below the full one that batches may be cut to
            (the caller cuts only right padding); empty when the graph's sequence axis is fixed.
        pooled_output: Name of the graph output holding the pooled output; None for a graph
            exported without one.
        run_per_bucket: Whether a batch whose rows fall in different sequence buckets should
            run once per bucket: yes on the CPU provider, where a run costs about what its
            positions cost.
        concurrency: How many batches it runs at once; runs beyond that wait their turn.
    """

    run_per_bucket = True
    concurrency = 1

    def __init__(
        self,
        session: ort.InferenceSession,
        plan: SessionPlan,
        sequence_buckets: tuple[int, ...] = (),
        pooled_output: str | None = None,
    ) -> None:
        self.session = session
        self.plan = plan
        self.sequence_buckets = sequence_buckets
        self.pooled_output = pooled_output
        self._output = session.get_outputs()[0].name

    @property
    def cuda_graphs(self) -> bool:
        """Whether runs replay CUDA graphs, which belong to the thread that captured them."""
        return self.plan.cuda_graphs

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits, float32 [n, labels], for int64 IDS and MASK of shape [n, sequence_length]."""
        return self.session.run([self._output], {"input_ids": ids, "attention_mask": mask})[0]

    def run_with_pooled(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and pooled output, float32 [n, labels] and [n, width], from one run.

        Raises:
            ArtifactError: The graph has no pooled output.
        """
        logits, pooled = self.session.run(
            [self._output, self._require_pooled()], {"input_ids": ids, "attention_mask": mask}
        )
        return logits, pooled

    def close(self) -> None:
        """Release what the model holds besides the session; nothing for a plain one."""

    def _require_pooled(self) -> str:
        if self.pooled_output is None:
            raise ArtifactError(f"{self.plan.describe()}: the graph has no pooled output")
        return self.pooled_output


class BoundModel(Model):
    """Runs batches in fixed, bound buffers: one slot per (batch size, sequence length)
    bucket, each batch padded up to the smallest slot that holds it.

    A CUDA graph replays the addresses it captured, so each slot has its own buffers,
    IO binding and graph id, and inputs are copied in place (`update_inplace`). Padding rows
    are a real encoding (the empty text's [CLS][SEP]): a fully masked row can turn an fp16
    attention into NaN; padding columns are pad tokens under a zero mask. Graphs live in the
    provider's per-thread context and are never released, so with graphs every run goes
    through one graph thread, which captured them all (a warm-up run of every slot) when the
    model was opened: runs from any other thread (a service's dispatcher,
    `Classifier.predict` on a thread pool) are handed to it, and nothing is ever captured
    again. Without graphs, runs are serialised by a lock.

    A batch runs once, at its longest row's sequence bucket (`run_per_bucket` False): on a
    GPU the host, not the model, bounds the speed, and each run is another graph replay.
    """

    run_per_bucket = False

    def __init__(
        self,
        session: ort.InferenceSession,
        plan: SessionPlan,
        filler: tuple[np.ndarray, np.ndarray],
        n_labels: int,
        sequence_buckets: tuple[int, ...] = (),
        pooled: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(session, plan, sequence_buckets, pooled[0] if pooled else None)
        self._filler = filler
        shapes = [(size, width) for width in sequence_buckets or filler[0].shape[1:] for size in plan.buckets]
        graph_ids = range(1, len(shapes) + 1) if plan.cuda_graphs else [None] * len(shapes)
        self._slots = [
            _Slot.bind(session, shape, n_labels, plan.device, graph_id, pooled)
            for shape, graph_id in zip(shapes, graph_ids)
        ]
        self._lock = threading.Lock()
        self._graph_runner: ThreadPoolExecutor | None = None
        self.graph_thread: threading.Thread | None = None  # the thread object, never its reusable id
        if plan.cuda_graphs:
            self._graph_runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-graphs")
            self._graph_runner.submit(self._warm_up).result()
        else:
            with self._lock:
                self._warm_up()

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._run(ids, mask, with_pooled=False)[0]

    def run_with_pooled(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_pooled()
        logits, pooled = self._run(ids, mask, with_pooled=True)
        return logits, pooled

    def _run(self, ids: np.ndarray, mask: np.ndarray, with_pooled: bool) -> tuple[np.ndarray, ...]:
        """The logits, and the pooled output WITH_POOLED, of a batch of any size."""
        largest = self.plan.buckets[-1]
        if len(ids) > largest:
            starts = range(0, len(ids), largest)
            parts = [self._run(ids[i : i + largest], mask[i : i + largest], with_pooled) for i in starts]
            return tuple(np.concatenate(column) for column in zip(*parts))
        if self._graph_runner is not None and threading.current_thread() is not self.graph_thread:
            return self._graph_runner.submit(self._run_bucket, ids, mask, with_pooled).result()
        return self._run_bucket(ids, mask, with_pooled)

    def close(self) -> None:
        """Stop the graph thread, if any; the model must not run afterwards."""
        if self._graph_runner is not None:
            self._graph_runner.shutdown(wait=True)

    def _run_bucket(self, ids: np.ndarray, mask: np.ndarray, with_pooled: bool = False) -> tuple[np.ndarray, ...]:
        rows, width = ids.shape
        # Slots are ordered by width, then size: the first that holds the batch is the smallest.
        slot = next((s for s in self._slots if s.width >= width and s.size >= rows), None)
        if slot is None:
            raise ValueError(f"a batch of sequence length {width} is longer than the model's {self._slots[-1].width}")
        with self._lock:
            logits = slot.run(self.session, *self._pad(ids, mask, slot))
            # The pooled output is bound on the device like the logits, and copied off it
            # only when asked for. Copies: a CPU buffer's numpy() is a view into it.
            fetched = (logits, slot.pooled.numpy()) if with_pooled and slot.pooled is not None else (logits,)
            return tuple(array[:rows].copy() for array in fetched)

    def _pad(self, ids: np.ndarray, mask: np.ndarray, slot: _Slot) -> tuple[np.ndarray, np.ndarray]:
        """IDS and MASK grown to SLOT's shape: pad tokens under a zero mask on the right, then
        filler rows below."""
        rows, width = ids.shape
        if width < slot.width:
            pad_id = self._filler[0][0, -1]  # the filler is [CLS][SEP] and pad tokens
            ids = np.pad(ids, ((0, 0), (0, slot.width - width)), constant_values=pad_id)
            mask = np.pad(mask, ((0, 0), (0, slot.width - width)))
        if rows == slot.size:
            return ids, mask
        fill_ids, fill_mask = self._fill(slot.size - rows, slot.width)
        return np.concatenate([ids, fill_ids]), np.concatenate([mask, fill_mask])

    def _fill(self, rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = (part[:, :width] for part in self._filler)
        return np.repeat(ids, rows, axis=0), np.repeat(mask, rows, axis=0)

    def _warm_up(self) -> None:
        """Run every slot on this thread: allocates, and captures its CUDA graph."""
        runs = _CAPTURE_RUN if self.plan.cuda_graphs else 1
        for slot in self._slots:
            for _ in range(runs):
                slot.run(self.session, *self._fill(slot.size, slot.width))
        if self.plan.cuda_graphs:
            self.graph_thread = threading.current_thread()
        thread = threading.current_thread().name
        widths = sorted({slot.width for slot in self._slots})
        _log.info(
            "%s: warmed %d slots (batch %s x sequence %s) on thread %s",
            self.plan.describe(), len(self._slots), list(self.plan.buckets), widths, thread,
        )  # fmt: skip


class Replicas(Model):
    """Several opened sessions of one plan, run as one model: each batch runs on an idle
    replica, so up to `concurrency` batches are in flight, and further runs wait for one.

    On a GPU a replica is a `BoundModel` with its own buffers, graphs and graph thread, and
    the replicas' batches overlap: one computes while the host fills, copies and reads out
    another. `session` is the first replica's.
    """

    def __init__(self, replicas: Sequence[Model]) -> None:
        first = replicas[0]
        super().__init__(first.session, first.plan, first.sequence_buckets, first.pooled_output)
        self.replicas = tuple(replicas)
        self.run_per_bucket = first.run_per_bucket
        self.concurrency = len(self.replicas)
        self._idle: SimpleQueue[Model] = SimpleQueue()
        for replica in self.replicas:
            self._idle.put(replica)

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with self._replica() as replica:
            return replica.run(ids, mask)

    def run_with_pooled(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._require_pooled()
        with self._replica() as replica:
            return replica.run_with_pooled(ids, mask)

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()

    @contextmanager
    def _replica(self) -> Iterator[Model]:
        """An idle replica, held for one run; waits while all are running."""
        replica = self._idle.get()
        try:
            yield replica
        finally:
            self._idle.put(replica)


@dataclass(frozen=True)
class _Slot:
    """One bucket's fixed buffers, their binding, and the run options naming its graph."""

    size: int
    width: int
    ids: ort.OrtValue
    mask: ort.OrtValue
    logits: ort.OrtValue
    pooled: ort.OrtValue | None
    binding: ort.IOBinding
    run_options: ort.RunOptions

    @classmethod
    def bind(
        cls,
        session: ort.InferenceSession,
        shape: tuple[int, int],
        n_labels: int,
        device: str,
        graph_id: int | None,
        pooled: tuple[str, int] | None = None,
    ) -> _Slot:
        """Allocate inputs of SHAPE (batch size, sequence length), [size, N_LABELS] logits and,
        where POOLED (output name, width) is given, the pooled output on DEVICE.

        Both outputs are bound, so that one captured graph serves classification and
        embedding alike; the graph computes the pooled output for the logits anyway.
        """
        size, width = shape

        def buffer(columns: int, dtype: type) -> ort.OrtValue:
            return ort.OrtValue.ortvalue_from_shape_and_type([size, columns], dtype, device, 0)

        ids, mask = buffer(width, np.int64), buffer(width, np.int64)
        logits = buffer(n_labels, np.float32)
        binding = session.io_binding()
        binding.bind_ortvalue_input("input_ids", ids)
        binding.bind_ortvalue_input("attention_mask", mask)
        binding.bind_ortvalue_output(session.get_outputs()[0].name, logits)
        pooled_buffer = buffer(pooled[1], np.float32) if pooled else None
        if pooled:
            binding.bind_ortvalue_output(pooled[0], pooled_buffer)
        run_options = ort.RunOptions()
        if graph_id is not None:
            run_options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return cls(size, width, ids, mask, logits, pooled_buffer, binding, run_options)

    def run(self, session: ort.InferenceSession, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.ids.update_inplace(ids)
        self.mask.update_inplace(mask)
        session.run_with_iobinding(self.binding, self.run_options)
        return self.logits.numpy()


def open_model(
    manifest: Manifest,
    plans: Sequence[SessionPlan],
    *,
    filler: tuple[np.ndarray, np.ndarray],
    threads: int | None = None,
    spin: bool = True,
    sequence_buckets: bool | None = None,
    replicas: int = 1,
) -> Model:
    """The first of PLANS that opens and warms up; a failure is logged and the next tried.

    Args:
        manifest: The artifact; each plan's model file is checked against its sha256.
        plans: From `plan_sessions`, best first.
        filler: ids and mask, each [1, sequence_length], of the row that pads GPU buckets.
        threads: Intra-op threads; None: one per physical core on the CPU, one on a GPU.
        spin: Let idle intra-op threads spin-wait (see `create_session`).
        sequence_buckets: Run batches at the manifest's sequence buckets where the graph's
            sequence axis allows it. None: on the CPU, not on a GPU (`GPU_SEQUENCE_BUCKETS`).
        replicas: Sessions to open of the plan that opens, for that many batches in
            flight (`Replicas`), each run once on FILLER here. THREADS is per replica; None
            gives each replica of several one thread: N sessions of a thread per core each
            would fight over the cores
            (2 cores, full-size int8, 2 replicas of 2 threads: 16 clients 38-39 texts/s
            against 44-54 for one session; open-loop p99 at half the peak 4-5x worse).

    Raises:
        ProviderError: The last plan failed too, or a further replica failed to open.
        ArtifactError: A model file is missing or does not match the manifest.
    """
    if not plans:
        raise ValueError("open_model needs at least one plan, got none")
    require_int("replicas", replicas, 1)
    if replicas > 1 and threads is None:
        threads = 1
    open_plan = partial(
        _open, manifest, filler=filler, threads=threads, spin=spin, sequence_buckets=sequence_buckets
    )
    opened = [_first_that_opens(plans, open_plan)]
    if replicas == 1:
        return opened[0]
    # The others take the plan that worked: a replica that then fails (GPU memory) is an
    # error to report, not a reason to run N batches on another provider.
    try:
        while len(opened) < replicas:
            opened.append(open_plan(opened[0].plan))
        for model in opened:  # a server's warm-up text reaches one replica: none stays cold
            model.run(*filler)
    except BaseException:
        for model in opened:
            model.close()
        raise
    return Replicas(opened)


def _first_that_opens(plans: Sequence[SessionPlan], open_plan: Callable[[SessionPlan], Model]) -> Model:
    """The model of the first of PLANS that opens; a failure is logged and the next tried,
    and the last plan's failure is raised."""
    *fallbacks, last = plans
    for plan in fallbacks:
        try:
            return open_plan(plan)
        except ProviderError as exc:
            _log.warning("%s is unusable, trying the next plan: %s", plan.describe(), exc)
    return open_plan(last)


def sequence_widths(
    buckets: tuple[int, ...], symbolic: bool, device: str, requested: bool | None
) -> tuple[int, ...]:
    """The manifest's BUCKETS a model runs at: none for a fixed sequence axis (not SYMBOLIC)
    or when REQUESTED is False; when it is None, none on a GPU (`GPU_SEQUENCE_BUCKETS`)."""
    wanted = GPU_SEQUENCE_BUCKETS if requested is None and device == GPU_DEVICE else requested is not False
    return buckets if symbolic and wanted else ()


def _open(
    manifest: Manifest,
    plan: SessionPlan,
    *,
    filler: tuple[np.ndarray, np.ndarray],
    threads: int | None,
    spin: bool,
    sequence_buckets: bool | None,
) -> Model:
    path = manifest.verified_path(manifest.variant(plan.variant))
    session = create_session(path, plan, threads=threads, spin=spin)
    manifest.check_graph_shapes(
        path, {i.name: i.shape for i in session.get_inputs()}, {o.name: o.shape for o in session.get_outputs()}
    )
    symbolic = not isinstance(session.get_inputs()[0].shape[1], int)
    widths = sequence_widths(manifest.sequence_buckets, symbolic, plan.device, sequence_buckets)
    if not plan.buckets:
        return Model(session, plan, widths, manifest.pooled_output)
    pooled = (manifest.pooled_output, manifest.pooled_width) if manifest.pooled_output and manifest.pooled_width else None
    try:
        return BoundModel(session, plan, filler, len(manifest.labels), widths, pooled)
    except Exception as exc:  # binding or graph capture failed: this plan cannot run here
        raise ProviderError(f"{plan.describe()} failed its warm-up run: {exc}") from exc
