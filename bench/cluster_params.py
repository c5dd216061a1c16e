"""bench.cluster's parameters: what one run measures, and bench/run.py's parameters
derived from them."""

from __future__ import annotations

from dataclasses import dataclass

from bench.run import Params


@dataclass(frozen=True)
class ClusterParams:
    """What one run measures."""

    duration: int
    warmup: int
    repeat: int
    rate: int
    connections: int
    blocked_fraction: float
    numbers: int
    prefixes: int
    idle: int
    quick: bool
    seed: int
    output: str
    keep_logs: bool



def run_params(params: ClusterParams) -> Params:
    """bench/run.py's parameters, for what is borrowed from it: the lists, wrk in its
    rate mode, the process handling, `measure`."""
    return Params(
        duration=params.duration, warmup=params.warmup, connections=params.connections,
        threads=1, rate=params.rate, blocked_fraction=params.blocked_fraction,
        numbers=params.numbers, prefixes=params.prefixes,
        unlisted_pool=2_000 if params.quick else 10_000,
        blocked_pool=200 if params.quick else 1_000, gk_workers=None,
        rows=("gatekeeper-lists",), modes=("rate",), quick=params.quick, seed=params.seed,
        output=params.output, keep_logs=params.keep_logs, repeat=params.repeat)
