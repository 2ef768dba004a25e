"""The Prometheus `/metrics` endpoint on the wire: counts after real traffic, auth, bounded labels.

The gateway is `create_app(Guardian(...))` served by uvicorn on loopback; an MCP SDK client
talks streamable HTTP to it, in front of the demo server over stdio. `/metrics` is scraped
over HTTP and parsed with prometheus_client's own text parser; every check is a difference
between two scrapes, so messages the client sends on its own (the handshake, listings)
do not blur the count.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError
from mcp_types import JSONRPCRequest
from prometheus_client.parser import text_string_to_metric_families

from guardian.app import create_app
from guardian.auth.keys_cli import create_key
from guardian.auth.settings import AuthSettings
from guardian.decision import ALLOW, Action, Decision, Finding
from guardian.events import Direction, Event, SessionInfo
from guardian.gateway import Guardian
from guardian.observability.metrics import MAX_FINDING_SERIES, MCP_METHODS, Metrics
from guardian.pipeline import InspectorSettings, Pipeline
from tests.support.auth import uvicorn_server
from tests.support.gateway import demo_server_stdio_argv
from tests.support.peers import open_client, text_of

pytestmark = pytest.mark.anyio

DENIED_TOOL = "crash"
MARKER = "vermilion-harbor-4417 please run rm -rf"
"""The blocked call's argument: it must not show up in any label."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def serve(guardian: Guardian, authentication: AuthSettings | None = None) -> AsyncIterator[str]:
    """The gateway app on a loopback port; yields its base URL."""
    async with uvicorn_server(create_app(guardian, authentication=authentication)) as port:
        yield f"http://127.0.0.1:{port}"


def demo_guardian(**extra: Any) -> Guardian:
    return Guardian({
        "upstream_mcp_server": {"command": demo_server_stdio_argv()},
        "security": {"tools": {"deny": [DENIED_TOOL]}},
        **extra,
    })  # fmt: skip


async def scrape_text(base: str, **headers: str) -> str:
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.get(f"{base}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(base: str) -> Samples:
    return parse(await scrape_text(base))


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not created yet (a labelled counter appears on first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


C2S, S2C = "client_to_server", "server_to_client"
MESSAGES = "guardian_messages_total"


async def test_counters_follow_real_tool_calls_and_labels_carry_no_content() -> None:
    async with serve(demo_guardian()) as base:
        async with open_client(f"{base}/mcp") as client:
            before = await scrape(base)
            assert value(before, "guardian_sessions_active", transport="streamable-http") == 1
            assert value(before, "guardian_sessions_total", transport="streamable-http") == 1

            result = await client.call_tool("add", {"a": 2, "b": 3})
            assert "5" in text_of(result)
            allowed = await scrape(base)
            assert delta(before, allowed, MESSAGES, direction=C2S, method="tools/call", action="allow") == 1
            assert delta(before, allowed, MESSAGES, direction=S2C, method="tools/call", action="allow") == 1

            with pytest.raises(MCPError):
                await client.call_tool(DENIED_TOOL, {"payload": MARKER})
            note = text_of(await client.call_tool("secret_note", {}))
            text = await scrape_text(base)
            after = parse(text)

        # The denied call: blocked on the way in, never reached the upstream, one tool_access finding.
        assert delta(allowed, after, MESSAGES, direction=C2S, method="tools/call", action="block") == 1
        assert delta(allowed, after, "guardian_findings_total", detector="tool_access", kind="tool_denied") == 1
        # secret_note: its call allowed, its result redacted by the secrets detector.
        assert "[REDACTED:SECRET:" in note
        assert delta(allowed, after, MESSAGES, direction=C2S, method="tools/call", action="allow") == 1
        assert delta(allowed, after, MESSAGES, direction=S2C, method="tools/call", action="redact") == 1
        assert delta(allowed, after, MESSAGES, direction=S2C, method="tools/call", action="allow") == 0
        assert total(after, "guardian_findings_total", detector="secrets") - total(
            allowed, "guardian_findings_total", detector="secrets"
        ) == note.count("[REDACTED:SECRET:")
        # Every decision is timed: the histogram counts exactly the messages counted, per direction.
        for direction in (C2S, S2C):
            timed = delta(before, after, "guardian_pipeline_duration_seconds_count", direction=direction)
            counted = total(after, MESSAGES, direction=direction) - total(before, MESSAGES, direction=direction)
            assert timed == counted >= 2
        assert value(after, "guardian_detector_errors_total", inspector="secrets", reason="error") == 0
        # Nothing the client or the upstream said is a label: not the tool, the argument or the secret.
        for leaked in (DENIED_TOOL, "vermilion", "rm -rf", "secret_note", "AKIA"):
            assert leaked not in text, leaked
        # Method labels come only from the MCP method set.
        methods = {dict(labels)["method"] for name, labels in after if name == MESSAGES}
        assert "tools/call" in methods and methods <= {"other", *MCP_METHODS}

        # The client hung up (DELETE): the session is closed, and that is no upstream failure.
        with anyio.fail_after(15):
            while value(closed := await scrape(base), "guardian_sessions_active", transport="streamable-http"):
                await anyio.sleep(0.05)  # the session task ends after the DELETE is answered
        assert value(closed, "guardian_upstream_failures_total") == 0


async def test_an_upstream_that_cannot_start_counts_as_an_upstream_failure(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-server")
    guardian = Guardian({"upstream_mcp_server": {"command": [missing]}})
    async with serve(guardian) as base:
        assert value(await scrape(base), "guardian_upstream_failures_total") == 0
        with pytest.raises((MCPError, ExceptionGroup)):
            async with open_client(f"{base}/mcp") as client:
                await client.list_tools()
        with anyio.fail_after(15):
            while value(after := await scrape(base), "guardian_sessions_active", transport="streamable-http"):
                await anyio.sleep(0.05)
        assert value(after, "guardian_upstream_failures_total") == 1
        assert value(after, "guardian_sessions_total", transport="streamable-http") == 1
        assert missing not in await scrape_text(base)


def api_key_auth(key_file: Path, **top: Any) -> tuple[AuthSettings, str]:
    key, _ = create_key(key_file, "prometheus", scopes=["metrics"])
    return AuthSettings.from_dict({"api_keys": {"file": str(key_file), "reload_interval": 0}, **top}), key


async def test_protected_metrics_need_a_credential(tmp_path: Path) -> None:
    settings, key = api_key_auth(tmp_path / "keys.yaml")
    assert settings.protect_metrics  # the default
    async with serve(demo_guardian(), settings) as base, httpx2.AsyncClient(timeout=30) as http:
        refused = await http.get(f"{base}/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "guardian_" not in refused.text
        served = await http.get(f"{base}/metrics", headers={"X-API-Key": key})
        assert served.status_code == 200
        assert served.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "# TYPE guardian_messages_total counter" in served.text
        assert "# TYPE guardian_pipeline_duration_seconds histogram" in served.text
        bearer = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {key}"})
        assert bearer.status_code == 200
        assert (await http.get(f"{base}/metrics", headers={"X-API-Key": key[:-2] + "xx"})).status_code == 401
        assert (await http.get(f"{base}/health")).status_code == 200  # public either way


async def test_unprotected_metrics_are_public_and_the_rest_is_not(tmp_path: Path) -> None:
    settings, _ = api_key_auth(tmp_path / "keys.yaml", protect_metrics=False)
    async with serve(demo_guardian(), settings) as base, httpx2.AsyncClient(timeout=30) as http:
        served = await http.get(f"{base}/metrics")
        assert served.status_code == 200
        assert "guardian_upstream_failures_total 0.0" in served.text
        assert (await http.post(f"{base}/mcp", json={})).status_code == 401


async def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    async with serve(demo_guardian()) as base, httpx2.AsyncClient(timeout=30) as http:
        response = await http.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")


async def test_metrics_switched_off_serve_404_and_count_nothing() -> None:
    guardian = demo_guardian(monitoring={"metrics": False})
    assert guardian.metrics is None and guardian.pipeline.metrics is None
    async with serve(guardian) as base, httpx2.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{base}/metrics")).status_code == 404
        async with open_client(f"{base}/mcp") as client:
            assert "5" in text_of(await client.call_tool("add", {"a": 2, "b": 3}))
        assert (await http.get(f"{base}/health")).status_code == 200


def test_each_guardian_has_its_own_registry() -> None:
    first, second = Guardian(), Guardian()
    assert first.metrics is not None and second.metrics is not None
    first.metrics.upstream_failed()
    assert first.metrics.registry is not second.metrics.registry
    assert parse(first.metrics.exposition()[0].decode())[("guardian_upstream_failures_total", frozenset())] == 1
    assert parse(second.metrics.exposition()[0].decode())[("guardian_upstream_failures_total", frozenset())] == 0


def test_unknown_methods_and_transports_are_folded_into_other() -> None:
    metrics = Metrics(process=False)
    for n in range(50):
        metrics.observe("client_to_server", f"vendor/method-{n}", ALLOW, 0.0001)
    metrics.session_opened("carrier-pigeon")
    samples = parse(metrics.exposition()[0].decode())
    assert value(samples, MESSAGES, direction=C2S, method="other", action="allow") == 50
    assert value(samples, "guardian_sessions_active", transport="other") == 1
    assert not any("vendor" in str(key) or "pigeon" in str(key) for key in samples)


class Broken:
    name = "broken"

    def request(self, event: Event) -> list[Finding]:
        raise RuntimeError("detector bug")


class Stuck:
    name = "stuck"

    async def request(self, event: Event) -> list[Finding]:
        await anyio.sleep(30)
        return []


async def test_detector_errors_and_timeouts_are_counted_per_inspector() -> None:
    metrics = Metrics(process=False)
    pipeline = Pipeline(metrics=metrics)
    pipeline.add(Broken(), InspectorSettings(fail_closed=False))
    pipeline.add(Stuck(), InspectorSettings(timeout=0.05, fail_closed=False))
    call = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/call", params={"name": "echo", "arguments": {}})
    event = Event(SessionInfo("s", "library", "-"), Direction.CLIENT_TO_SERVER, call)
    decision = await pipeline.run(event)
    assert decision.action is Action.WARN  # both fail open
    samples = parse(metrics.exposition()[0].decode())
    assert value(samples, "guardian_detector_errors_total", inspector="broken", reason="error") == 1
    assert value(samples, "guardian_detector_errors_total", inspector="stuck", reason="timeout") == 1
    assert value(samples, "guardian_findings_total", detector="stuck", kind="detector_error") == 1
    assert value(samples, MESSAGES, direction=C2S, method="tools/call", action="warn") == 1


def test_finding_series_are_capped() -> None:
    metrics = Metrics(process=False)
    extra = 25
    for n in range(MAX_FINDING_SERIES + extra):
        finding = Finding("plugin", f"kind-{n}", "found", action=Action.WARN)
        metrics.observe(C2S, "tools/call", Decision(action=Action.WARN, findings=[finding]), 0.0001)
    samples = parse(metrics.exposition()[0].decode())
    series = [labels for name, labels in samples if name == "guardian_findings_total"]
    assert len(series) == MAX_FINDING_SERIES + 1
    assert value(samples, "guardian_findings_total", detector="other", kind="other") == extra
