"""Helpers for the TUI tests."""

from __future__ import annotations


async def wait_for(pilot, condition, timeout: float = 60.0, step: float = 0.05) -> None:
    """Let the app run until ``condition()`` holds (the agent works on its own thread)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(step)
