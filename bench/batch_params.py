"""The parameters of bench/batches.py: its fixed figures (batch path, sender, text, body
limit, blocked numbers per batch, target ratio), what one run measures (`BatchParams`),
and bench/run.py's parameters derived from them."""

from __future__ import annotations

from dataclasses import dataclass

from bench.run import REPO, Params

DEFAULT_OUTPUT = REPO / "bench" / "results" / "batches.json"
BATCH_MOUNT = "/bulk"
BATCH_PATH = BATCH_MOUNT + "/v1/messages"
BATCH_SENDER = "+15005550006"
BATCH_TEXT = "Your appointment is tomorrow at 10:00"
MAX_BODY_BYTES = 1_048_576   # Gatekeeper's default proxy.max_body_bytes, kept here
BLOCKED_PER_BATCH = 2        # one exact entry, one number under a prefix
TARGET_RATIO = 2.0           # the figure, reported against, never asserted


@dataclass(frozen=True)
class BatchParams:
    """What one run measures."""

    duration: int
    warmup: int
    repeat: int
    rate: int
    connections: int
    blocked_fraction: float
    numbers: int
    prefixes: int
    recipients: int
    concurrency: int
    batch_blocked: float
    batch_pool: int
    anatomy: bool
    quick: bool
    seed: int
    output: str
    keep_logs: bool
    helper_cpus: str | None = None


def run_params(params: BatchParams) -> Params:
    """bench/run.py's parameters, for what is borrowed from it: the lists, wrk in its
    rate mode, the process handling."""
    return Params(
        duration=params.duration, warmup=params.warmup, connections=params.connections,
        threads=1, rate=params.rate, blocked_fraction=params.blocked_fraction,
        numbers=params.numbers, prefixes=params.prefixes,
        unlisted_pool=2_000 if params.quick else 10_000,
        blocked_pool=200 if params.quick else 1_000, gk_workers=None,
        rows=("gatekeeper-lists",), modes=("rate",), quick=params.quick, seed=params.seed,
        output=params.output, keep_logs=params.keep_logs, repeat=params.repeat)
