#!/usr/bin/env bash
# Smoke test for the Node peers: client.mjs and the MCP Inspector CLI against server-everything
# (stdio, streamable HTTP, SSE; HTTP servers on 127.0.0.1 only, ephemeral ports) and, if present,
# against examples/demo_server.py. Run from anywhere after `npm ci --prefix tests/node`.
# Exits non-zero on the first failure. Needs: node >= 20, python3 (for JSON checks).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NM="$HERE/node_modules"
SE="$NM/@modelcontextprotocol/server-everything/dist/index.js"
INSPECTOR="$NM/.bin/mcp-inspector"
CLIENT="$HERE/client.mjs"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
[ -f "$SE" ] || { echo "run: npm ci --prefix tests/node" >&2; exit 2; }

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# start_everything TRANSPORT VAR: starts it in this shell (so its PID is ours to kill) and sets
# VAR to its port. Server stdout/stderr go to files, never to a pipe nobody reads: node writes
# to pipes synchronously and would block once the pipe is full.
start_everything() {
  local t="$1" var="$2" err="$TMP/se-$1.err" port=""
  PORT=0 node --require "$HERE/loopback.cjs" "$SE" "$t" >"$TMP/se-$t.out" 2>"$err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    port=$(sed -n 's/^LOOPBACK_LISTENING .*"port":\([0-9]*\).*/\1/p' "$err" 2>/dev/null | head -1)
    [ -n "$port" ] && { printf -v "$var" '%s' "$port"; return 0; }
    sleep 0.05
  done
  echo "server-everything $t did not start" >&2; cat "$err" >&2; return 1
}

# check NAME JSON PYTHON-EXPR  (the expression sees the parsed JSON as d)
check() {
  local name="$1" json="$2" expr="$3"
  if python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($expr) else 1)" "$json"; then
    echo "ok   $name"
  else
    echo "FAIL $name: $json" >&2; exit 1
  fi
}

start_everything streamableHttp H
start_everything sse S
# loopback only
if command -v ss >/dev/null; then
  ss -ltn | grep -E ":($H|$S)\b" | grep -vq '127.0.0.1' && { echo "FAIL not loopback-only" >&2; exit 1; }
fi

ECHO='--tool echo --args {"message":"hi"}'
out=$(node "$CLIENT" --quiet $ECHO --read demo://resource/dynamic/text/1 -- node "$SE" stdio)
check "client.mjs stdio  -> everything" "$out" 'd["call"]["content"][0]["text"]=="Echo: hi" and d["read"] and d["serverExit"]["by"]=="eof"'
out=$(node "$CLIENT" $ECHO --url "http://127.0.0.1:$H/mcp")
check "client.mjs http   -> everything" "$out" 'd["call"]["content"][0]["text"]=="Echo: hi" and d["protocolVersion"]=="2025-11-25"'
out=$(node "$CLIENT" $ECHO --sse "http://127.0.0.1:$S/sse")
check "client.mjs sse    -> everything" "$out" 'd["call"]["content"][0]["text"]=="Echo: hi"'
out=$(node "$CLIENT" --quiet --roots file:///r --sampling canned --tool trigger-sampling-request --args '{"prompt":"p"}' -- node "$SE" stdio)
check "client.mjs sampling (stdio)" "$out" '"sampling/createMessage" in d["serverRequests"] and "canned" in d["call"]["content"][0]["text"]'
out=$(node "$CLIENT" --progress --tool trigger-long-running-operation --args '{"duration":0.2,"steps":2}' --url "http://127.0.0.1:$H/mcp")
check "client.mjs progress (http)" "$out" 'd["notifications"].count("notifications/progress")==2'

out=$("$INSPECTOR" --cli node "$SE" stdio --method tools/call --tool-name echo --tool-args-json '{"message":"hi"}' --format json -q)
check "inspector stdio   -> everything" "$out" 'd["result"]["content"][0]["text"]=="Echo: hi"'
out=$("$INSPECTOR" --cli "http://127.0.0.1:$H/mcp" --method tools/call --tool-name echo --tool-args-json '{"message":"hi"}' --format json -q)
check "inspector http    -> everything" "$out" 'd["result"]["content"][0]["text"]=="Echo: hi"'
out=$("$INSPECTOR" --cli "http://127.0.0.1:$S/sse" --method tools/list --format json -q)
check "inspector sse     -> everything" "$out" 'any(t["name"]=="echo" for t in d["result"]["tools"])'

DEMO="$ROOT/examples/demo_server.py"
if [ -f "$DEMO" ]; then
  out=$(node "$CLIENT" --quiet --tool echo --args '{"text":"hi"}' --read demo://readme -- "$PY" "$DEMO")
  check "client.mjs stdio  -> demo_server.py" "$out" 'd["call"]["content"][0]["text"]=="hi" and d["read"]'
  out=$("$INSPECTOR" --cli --protocol-era modern "$PY" "$DEMO" --method tools/call --tool-name echo --tool-args-json '{"text":"hi"}' --format json -q)
  check "inspector modern era stdio -> demo_server.py" "$out" 'd["result"]["content"][0]["text"]=="hi"'
else
  echo "skip demo_server.py (absent)"
fi
echo "all ok"
