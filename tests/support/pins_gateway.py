"""The gateway with the pins inspector, as a real process, for the rug-pull tests.

    python -m tests.support.pins_gateway wrap CONFIG_JSON           # like `guardian wrap`
    python -m tests.support.pins_gateway serve CONFIG_JSON PORT     # like `guardian serve` (/mcp, /sse)

It builds `Guardian(config)` and, unless the gateway already registered it from the config,
adds `PinsInspector.from_options(security.inspectors.pins)`: the same thing the integrated
gateway does, so these tests keep running once `pins` is wired into `Guardian`.
Run with the repository root as the working directory.
"""

from __future__ import annotations

import sys

import anyio

from guardian.config import Config
from guardian.gateway import Guardian
from guardian.pins import PinsInspector


def build(config_path: str) -> Guardian:
    guardian = Guardian(Config.load(config_path))
    if PinsInspector.name not in [inspector.name for inspector in guardian.pipeline.inspectors]:
        block = guardian.config.security.inspectors.get(PinsInspector.name)
        guardian.add_inspector(PinsInspector.from_options(block.options if block is not None else {}))
    return guardian


def main(argv: list[str]) -> None:
    mode, config_path = argv[0], argv[1]
    guardian = build(config_path)
    if mode == "wrap":
        failure = anyio.run(guardian.run_stdio)
        raise SystemExit(1 if failure else 0)
    if mode == "serve":
        import uvicorn

        uvicorn.run(guardian.asgi_app(), host="127.0.0.1", port=int(argv[2]), log_level="warning", lifespan="on",
                    timeout_graceful_shutdown=2)
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
