"""The generated block lists: `ListFiles`, `generate_lists` (cached in bench/.cache)."""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.params import BENCH_DIR, REPO, SCOPES, BenchError, Params
from bench.procs import log

CACHE_DIR = BENCH_DIR / ".cache"
LISTS_FORMAT = 1  # bump when the generated files change shape


# --------------------------------------------------------------------------- the lists


@dataclass(frozen=True)
class ListFiles:
    """Generated block lists (one file per scope) and the destination pool for wrk."""

    scope_files: dict[str, Path]
    pool: Path
    manifest: dict[str, Any]


def _scope_file_name(scope: str) -> str:
    return "block-" + scope.replace(":", "_") + ".txt"


def generate_lists(params: Params) -> ListFiles:
    """The block lists and the pool, generated deterministically from the seed and kept
    under bench/.cache (reused when complete: manifest.json is written last).

    Number plan (all +1, ten national digits, so every one is a possible number):
    exact entries have area codes 300-699; prefixes are `+17...*`/`+18...*` (area codes
    700-899, 3 to 7 national digits); unlisted destinations have area codes 200-299, so
    no entry can match them and the 95% do the same lookups with or without lists.
    Blocked destinations: half exact entries, half numbers under a prefix, all scopes.
    """
    name = (f"lists-v{LISTS_FORMAT}-n{params.numbers}-p{params.prefixes}"
            f"-u{params.unlisted_pool}-b{params.blocked_pool}-s{params.seed}")
    folder = CACHE_DIR / name
    scope_files = {s: folder / _scope_file_name(s) for s in SCOPES}
    pool = folder / "pool.txt"
    manifest_path = folder / "manifest.json"
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads(manifest_path.read_text())
        if all(f.is_file() for f in (*scope_files.values(), pool)):
            return ListFiles(scope_files, pool, manifest)
    started = time.monotonic()
    log(f"generating lists in {folder.relative_to(REPO)} (cached for later runs) ...")
    rng = random.Random(params.seed)  # noqa: S311 - reproducible test data, not secrets
    # Exact numbers: distinct national numbers 3000000000..6999999999.
    exact = [3_000_000_000 + v for v in rng.sample(range(4_000_000_000), params.numbers)]
    prefixes: set[str] = set()
    lengths, weights = (3, 4, 5, 6, 7), (1, 4, 16, 40, 40)
    while len(prefixes) < params.prefixes:
        length = rng.choices(lengths, weights)[0]
        digits = rng.choice("78") + "".join(rng.choice("0123456789")
                                            for _ in range(length - 1))
        prefixes.add(digits)
    prefix_list = sorted(prefixes)
    rng.shuffle(prefix_list)
    folder.mkdir(parents=True, exist_ok=True)
    handles = {s: (folder / (_scope_file_name(s) + ".part")).open("w") for s in SCOPES}
    try:
        for i, national in enumerate(exact):
            handles[SCOPES[i % len(SCOPES)]].write(f"+1{national}\n")
        for i, digits in enumerate(prefix_list):
            handles[SCOPES[i % len(SCOPES)]].write(f"+1{digits}*\n")
    finally:
        for handle in handles.values():
            handle.close()
    unlisted: set[int] = set()
    while len(unlisted) < params.unlisted_pool:
        unlisted.add(2_000_000_000 + rng.randrange(1_000_000_000))
    blocked_exact = rng.sample(exact, min(len(exact), params.blocked_pool // 2))
    blocked_prefixed: list[str] = []
    for _ in range(params.blocked_pool - len(blocked_exact)):
        digits = rng.choice(prefix_list)
        blocked_prefixed.append(digits + "".join(rng.choice("0123456789")
                                                 for _ in range(10 - len(digits))))
    # The plan guarantees it; checked anyway, since the comparison depends on it.
    exact_set = set(exact)
    for national in unlisted:
        text = str(national)
        if national in exact_set or any(text[:n] in prefixes for n in range(3, 8)):
            raise BenchError(f"generated unlisted number +1{text} is listed")
    with (folder / "pool.txt.part").open("w") as out:
        out.writelines(f"u +1{n}\n" for n in sorted(unlisted))
        out.writelines(f"b +1{n}\n" for n in blocked_exact)
        out.writelines(f"b +1{d}\n" for d in blocked_prefixed)
    for scope in SCOPES:
        (folder / (_scope_file_name(scope) + ".part")).replace(scope_files[scope])
    (folder / "pool.txt.part").replace(pool)
    manifest = {
        "numbers": params.numbers, "prefixes": params.prefixes, "seed": params.seed,
        "scopes": list(SCOPES), "unlisted_pool": len(unlisted),
        "blocked_pool": len(blocked_exact) + len(blocked_prefixed),
        "blocked_pool_exact": len(blocked_exact),
        "blocked_pool_under_prefix": len(blocked_prefixed),
        "plan": {"exact": "+1 area codes 300-699", "prefixes": "+17*/+18*, 3-7 digits",
                 "unlisted": "+1 area codes 200-299"},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"  generated in {time.monotonic() - started:.1f} s")
    return ListFiles(scope_files, pool, manifest)
