"""Processes for the shared (Redis) rate-limit tests: each is its own OS process and event loop.

    python -m tests.support.ratelimit_peer hold OPTIONS_JSON IDENTITY
        Opens one session for IDENTITY, prints `held` (or `refused <limit>`), then waits
        for stdin to close before closing the session: killed instead, it is a gateway
        that crashed holding a slot.

Run with the repository root as the working directory.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

from guardian.events import SessionInfo
from guardian.ratelimit import RateLimitInspector


async def _hold(options: dict[str, Any], identity: str) -> None:
    limiter = RateLimitInspector.from_options(options)
    session = SessionInfo(session_id="held", transport="test", upstream="test", identity=identity)
    refused = await limiter.open_session(session)
    if refused is not None:
        print(f"refused {refused.error_data and refused.error_data.get('limit')}", flush=True)
        await limiter.aclose()
        return
    print("held", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.read)
    await limiter.close_session(session)
    await limiter.aclose()


def main(argv: list[str]) -> None:
    mode, options = argv[0], json.loads(argv[1])
    if mode == "hold":
        anyio.run(_hold, options, argv[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
