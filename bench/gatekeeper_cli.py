"""The Gatekeeper under test as the bench starts it: its console script
(`gatekeeper_command`), whether `gatekeeper run` has --workers, its config file
(`write_gatekeeper_config`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.params import HOST, REPO


def gatekeeper_command() -> list[str]:
    """The `gatekeeper` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "gatekeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gatekeeper"]


def gatekeeper_has_workers_flag() -> bool:
    """Whether `gatekeeper run` accepts --workers."""
    done = subprocess.run(  # noqa: S603 - our own argv, no shell
        [*gatekeeper_command(), "run", "--help"], capture_output=True, text=True,
        timeout=60, check=False, cwd=REPO)
    return "--workers" in done.stdout


def write_gatekeeper_config(path: Path, redis_url: str, key_prefix: str,
                            upstream_port: int, proxy_port: int, admin_port: int,
                            data_dir: Path, policy: dict[str, Any] | None = None) -> None:
    """A config whose only upstream is the fake gateway on loopback (with `policy`)."""
    config = {
        "proxy": {"host": HOST, "port": proxy_port, "on_invalid": "reject"},
        "admin": {"host": HOST, "port": admin_port, "key_env": "GATEKEEPER_BENCH_ADMIN_KEY"},
        "redis": {"url": redis_url, "data_dir": str(data_dir), "key_prefix": key_prefix,
                  "timeout": 2.0},
        "store": {"on_error": "closed"},
        # warning: the per-request `request` event is info; blocked attempts
        # (destination_blocked) are warnings and still written, to a log file.
        "log": {"level": "warning", "format": "json"},
        "upstreams": [{
            "name": "twilio", "url": f"http://{HOST}:{upstream_port}", "preset": "twilio",
            "region": "US", "on_block": "reject", "timeout": 30,
            "scopes": ["tenant:acme", "tenant:beta"],
        }],
        **({"policy": policy} if policy else {}),
    }
    # JSON is YAML: no YAML writer needed.
    path.write_text(json.dumps(config, indent=2) + "\n")
