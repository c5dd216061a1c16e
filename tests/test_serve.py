"""serve.py's SIGHUP hold: a hang-up while a process starts is kept and handled once.

Each case runs in its own interpreter: a signal mask set in the test process would
reach every later test."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The window that once reloaded twice: the event loop runs (its wake-up pipe is set), the
# handler is not installed yet, and nothing awaits in between.
PROGRAM = textwrap.dedent("""
    import asyncio, os, signal, threading
    from gatekeeper.serve import handle_sighup, hold_sighup, run_loop

    hold_sighup()
    for _ in range({before}):  # before the loop runs
        os.kill(os.getpid(), signal.SIGHUP)

    async def main():
        loop = asyncio.get_running_loop()
        handled = []
        await asyncio.sleep(0)
        for _ in range({window}):  # the loop runs, the handler not yet installed
            os.kill(os.getpid(), signal.SIGHUP)
        woken = asyncio.Event()
        handle_sighup(loop, lambda: (handled.append(1), woken.set()))
        await asyncio.sleep(0.2)
        print("held", len(handled))
        for _ in range({after}):  # served: each one handled, and at once on an idle loop
            woken.clear()
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGHUP)).start()
            await asyncio.wait_for(woken.wait(), 5)
        print("served", len(handled))

    run_loop(main())
""")


@pytest.mark.parametrize(("before", "window", "after", "held", "served"), [
    (1, 0, 0, 1, 1),   # one while starting: handled once the loop handles it
    (0, 1, 0, 1, 1),   # one in the window that reloaded twice: once
    (1, 1, 0, 1, 1),   # two while starting: one reload reads the file as it is now
    (0, 0, 0, 0, 0),   # none: no reload
    (1, 0, 2, 1, 3),   # released: each later one is handled
])
def test_a_sighup_while_starting_is_handled_exactly_once(
        before: int, window: int, after: int, held: int, served: int) -> None:
    """SIGHUPs before serving are neither lost nor doubled, nor do they end the process;
    after release every SIGHUP is handled."""
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(before=before, window=window, after=after)],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["held", str(held), "served", str(served)]

