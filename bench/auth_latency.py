"""Authentication cost per request: what `AuthMiddleware` adds in front of `/mcp`.

A benchmark, not a test: it prints medians and p95 per credential kind and always exits 0.
Each row calls the middleware in front of a no-op app with a fresh scope per request,
after a warm-up (so the JWKS is fetched and cached, as it is on a running gateway), and
subtracts the same loop calling the no-op app directly. "Full check" rows verify the
signature every time (`token_cache_ttl: 0`, i.e. a token's first request); "token reused"
is every later request with the same token. Run it with::

    .venv/bin/python bench/auth_latency.py [--requests N]

Target: authentication plus policy at most 0.3 ms median per request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import anyio  # noqa: E402

from guardian.auth.keys_cli import create_key  # noqa: E402
from guardian.auth.middleware import AuthMiddleware  # noqa: E402
from guardian.auth.settings import AuthSettings  # noqa: E402
from tests.support.auth import ISSUER, RESOURCE, JWKSServer, claims, ec_key, rsa_key  # noqa: E402

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
TARGET_MS = 0.3


async def _noop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _send(message: Any) -> None:
    pass


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope(credential: tuple[bytes, bytes] | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8080"), (b"accept", b"application/json, text/event-stream"),
               (b"content-type", b"application/json"), (b"mcp-session-id", b"0" * 32),
               (b"mcp-protocol-version", b"2025-11-25")]
    if credential is not None:
        headers.append(credential)
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers, "client": ("127.0.0.1", 5000)}


async def _timings(app: App, credential: tuple[bytes, bytes] | None, requests: int) -> list[float]:
    for _ in range(200):
        await app(_scope(credential), _receive, _send)
    out: list[float] = []
    for _ in range(requests):
        scope = _scope(credential)
        start = time.perf_counter_ns()
        await app(scope, _receive, _send)
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


async def main(requests: int) -> None:
    rsa, ec = rsa_key("bench-rsa"), ec_key("bench-ec")
    with JWKSServer() as jwks, tempfile.TemporaryDirectory() as tmp:
        jwks.publish(rsa, ec)
        key_file = Path(tmp) / "keys.yaml"
        for n in range(50):  # a realistic file, not a single entry
            create_key(key_file, f"svc-{n}", scopes=["mcp:tools"])
        api_key, _ = create_key(key_file, "bench", scopes=["mcp:tools"])
        settings = AuthSettings.from_dict({
            "resource": RESOURCE, "required_scopes": ["mcp:tools"],
            "oauth": {"issuer": ISSUER, "jwks_uri": jwks.url},
            "api_keys": {"file": str(key_file)},
        })  # fmt: skip
        uncached = AuthSettings.from_dict({
            "resource": RESOURCE, "required_scopes": ["mcp:tools"],
            "oauth": {"issuer": ISSUER, "jwks_uri": jwks.url, "token_cache_ttl": 0},
        })  # fmt: skip
        middleware = AuthMiddleware(_noop, settings)
        full_check = AuthMiddleware(_noop, uncached)
        rsa_token = b"Bearer " + rsa.sign(claims()).encode()
        ec_token = b"Bearer " + ec.sign(claims()).encode()
        rows = [
            ("API key (X-API-Key)", middleware, (b"x-api-key", api_key.encode())),
            ("JWT RS256, full check", full_check, (b"authorization", rsa_token)),
            ("JWT ES256, full check", full_check, (b"authorization", ec_token)),
            ("JWT RS256, token reused", middleware, (b"authorization", rsa_token)),
        ]
        baseline = await _timings(_noop, None, requests)
        base = statistics.median(baseline)
        print(f"{requests} requests per row; times in ms, no-op app alone: median {base:.4f}")
        print(f"{'credential':26} {'median':>8} {'p95':>8}  vs target {TARGET_MS} ms")
        for label, app, credential in rows:
            times = await _timings(app, credential, requests)
            median = statistics.median(times) - base
            p95 = statistics.quantiles(times, n=20)[18] - base
            verdict = "PASS" if median <= TARGET_MS else "MISS"
            print(f"{label:26} {median:8.4f} {p95:8.4f}  {verdict}")
        print(f"JWKS fetches during the run: {jwks.hits}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000)
    anyio.run(main, parser.parse_args().requests)
