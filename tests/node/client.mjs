#!/usr/bin/env node
// A small non-Python MCP client (TypeScript SDK v1) for MCP Guardian's tests.
//
//   node tests/node/client.mjs --url http://127.0.0.1:PORT/mcp [options]   # streamable HTTP
//   node tests/node/client.mjs --sse http://127.0.0.1:PORT/sse [options]   # SSE (legacy HTTP+SSE)
//   node tests/node/client.mjs [options] -- CMD ARGS...                    # stdio (spawns CMD)
//
// It initializes, lists tools, optionally calls one tool and reads one resource, then prints
// exactly ONE line of JSON on stdout and exits 0 (1 on any failure, 2 on bad usage):
//
//   {"transport","serverInfo","protocolVersion","capabilities","tools":[names],
//    "call":<CallToolResult|null>,"read":<ReadResourceResult|null>,"error":<message|null>,
//    "notifications":[methods received],"serverRequests":[methods received]}
//
// A tool result with isError:true is a successful exchange (exit 0); a JSON-RPC error, a
// transport failure or the overall timeout is a failure (exit 1, "error" set, partial fields kept).
//
// Options:
//   --tool NAME          call this tool (after tools/list)
//   --args JSON          its arguments (default {})
//   --read URI           resources/read this URI
//   --timeout SECONDS    overall deadline for everything before cleanup (default 20)
//   --header "K: V"      extra HTTP header (repeatable; --url/--sse only)
//   --roots URI[,URI]    advertise the roots capability and answer roots/list with these
//   --sampling TEXT      advertise sampling; answer sampling/createMessage with TEXT
//   --elicit JSON        advertise elicitation (form); answer elicitation/create with accept+JSON
//   --progress           ask for progress notifications on the tool call (sends a progressToken)
//   --log-level LEVEL    send logging/setLevel after initialize
//   --linger MS          wait MS after the last request before closing (collect notifications)
//   --grace MS           stdio: after closing the server's stdin, wait this long before SIGTERM
//                        (default 1000; 0 on timeout/signal)
//   --quiet              discard a stdio server's stderr (default: forwarded to our stderr)
//
// stdio: the server gets this process's full environment (the SDK's default would pass only
// HOME/LOGNAME/PATH/SHELL/TERM/USER) and its stderr is piped through us (so a server that
// outlives us never holds our caller's stderr open). At exit: close its stdin, wait --grace,
// SIGTERM, wait 2 s, SIGKILL; the JSON then also carries
//   "serverExit": {"code", "signal", "by": "already-exited"|"eof"|"SIGTERM"|"SIGKILL"|"unknown"}
// ("eof" = it exited by itself after stdin closed). The JSON line is written after this cleanup.
// streamable HTTP: the session is ended with DELETE before closing.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const USAGE =
  "usage: client.mjs (--url URL | --sse URL | -- CMD ARGS...) [--tool NAME --args JSON] [--read URI] " +
  "[--timeout S] [--header 'K: V']... [--roots URIS] [--sampling TEXT] [--elicit JSON] [--progress] " +
  "[--log-level L] [--linger MS] [--grace MS] [--quiet]";

const out = {
  transport: null,
  serverInfo: null,
  protocolVersion: null,
  capabilities: null,
  tools: [],
  call: null,
  read: null,
  error: null,
  notifications: [],
  serverRequests: [],
  serverExit: null,
};

let printed = false;
function emit() {
  if (printed) return;
  printed = true;
  process.stdout.write(JSON.stringify(out) + "\n");
}

function errMessage(e) {
  if (e instanceof Error) {
    let m = e.message || String(e);
    // undici's "fetch failed" hides the reason (ECONNREFUSED etc.) in .cause
    if (e.cause && typeof e.cause === "object" && e.cause.message && !m.includes(e.cause.message)) {
      m += `: ${e.cause.message}`;
    }
    return m;
  }
  return typeof e === "string" ? e : JSON.stringify(e);
}

// ---------- argument parsing ----------
function parseArgs(argv) {
  const o = { headers: {}, args: {}, timeout: 20, linger: 0, grace: 1000, cmd: null };
  const needValue = (i, flag) => {
    if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      o.cmd = argv.slice(i + 1);
      if (o.cmd.length === 0) throw new Error("-- must be followed by a command");
      break;
    }
    switch (a) {
      case "--url": o.url = needValue(i++, a); break;
      case "--sse": o.sse = needValue(i++, a); break;
      case "--tool": o.tool = needValue(i++, a); break;
      case "--args": {
        const v = needValue(i++, a);
        try { o.args = JSON.parse(v); } catch (e) { throw new Error(`--args is not JSON: ${errMessage(e)}`); }
        if (o.args === null || typeof o.args !== "object" || Array.isArray(o.args)) throw new Error("--args must be a JSON object");
        break;
      }
      case "--read": o.read = needValue(i++, a); break;
      case "--timeout": {
        o.timeout = Number(needValue(i++, a));
        if (!(o.timeout > 0)) throw new Error("--timeout must be a positive number of seconds");
        break;
      }
      case "--header": {
        const v = needValue(i++, a);
        const k = v.indexOf(":");
        if (k <= 0) throw new Error(`--header must look like "Name: value", got ${JSON.stringify(v)}`);
        o.headers[v.slice(0, k).trim()] = v.slice(k + 1).trim();
        break;
      }
      case "--roots": o.roots = needValue(i++, a).split(",").filter(Boolean); break;
      case "--sampling": o.sampling = needValue(i++, a); break;
      case "--elicit": {
        const v = needValue(i++, a);
        try { o.elicit = JSON.parse(v); } catch (e) { throw new Error(`--elicit is not JSON: ${errMessage(e)}`); }
        break;
      }
      case "--progress": o.progress = true; break;
      case "--log-level": o.logLevel = needValue(i++, a); break;
      case "--linger": o.linger = Number(needValue(i++, a)) || 0; break;
      case "--grace": o.grace = Number(needValue(i++, a)); break;
      case "--quiet": o.quiet = true; break;
      case "-h": case "--help": o.help = true; break;
      default: throw new Error(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (o.help) return o;
  const n = [o.url, o.sse, o.cmd].filter(Boolean).length;
  if (n !== 1) throw new Error("give exactly one of --url, --sse, or -- CMD ARGS...");
  return o;
}

// ---------- a transport wrapper that records what the server sends ----------
class TapTransport {
  constructor(inner) {
    this.inner = inner;
    this.initId = undefined;
    inner.onmessage = (msg, extra) => {
      this.observe(msg);
      this.onmessage?.(msg, extra);
    };
    inner.onclose = () => this.onclose?.();
    inner.onerror = (e) => this.onerror?.(e);
  }
  observe(msg) {
    if (!msg || typeof msg !== "object") return;
    if (typeof msg.method === "string") {
      if (msg.id === undefined) out.notifications.push(msg.method);
      else out.serverRequests.push(msg.method);
    } else if (msg.id !== undefined && msg.id === this.initId && msg.result) {
      out.protocolVersion = msg.result.protocolVersion ?? null;
    }
  }
  async start() { return this.inner.start(); }
  async send(msg, opts) {
    if (msg && msg.method === "initialize") this.initId = msg.id;
    return this.inner.send(msg, opts);
  }
  async close() { return this.inner.close(); }
  get sessionId() { return this.inner.sessionId; }
  setProtocolVersion(v) { this.inner.setProtocolVersion?.(v); }
}

// ---------- main ----------
let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  out.error = `usage: ${errMessage(e)}`;
  emit();
  process.stderr.write(USAGE + "\n");
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE + "\n");
  process.exit(0);
}

let inner;
try {
  if (opts.url) {
    out.transport = "streamable-http";
    inner = new StreamableHTTPClientTransport(new URL(opts.url), { requestInit: { headers: opts.headers } });
  } else if (opts.sse) {
    out.transport = "sse";
    // requestInit.headers go on the GET /sse stream and on every POST to the endpoint.
    inner = new SSEClientTransport(new URL(opts.sse), { requestInit: { headers: opts.headers } });
  } else {
    out.transport = "stdio";
    inner = new StdioClientTransport({
      command: opts.cmd[0],
      args: opts.cmd.slice(1),
      env: { ...process.env },
      stderr: "pipe", // never let the server hold our caller's stderr open
    });
  }
} catch (e) {
  out.error = `usage: ${errMessage(e)}`;
  emit();
  process.exit(2);
}
// The spawned server (stdio only). StdioClientTransport keeps its ChildProcess in a private
// field that it clears on 'close'; grab it as soon as start() resolves (SDK pinned to 1.32.2).
let stdioChild = null;
if (inner instanceof StdioClientTransport && !opts.quiet) {
  inner.stderr?.on("data", (chunk) => process.stderr.write(chunk));
}

const capabilities = {};
if (opts.roots) capabilities.roots = { listChanged: true };
if (opts.sampling !== undefined) capabilities.sampling = {};
if (opts.elicit !== undefined) capabilities.elicitation = { form: {} };

const client = new Client({ name: "mcp-guardian-test-client.mjs", version: "0.1.0" }, { capabilities });
if (opts.roots) {
  client.setRequestHandler(ListRootsRequestSchema, async () => ({
    roots: opts.roots.map((uri) => ({ uri, name: uri })),
  }));
}
if (opts.sampling !== undefined) {
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({
    role: "assistant",
    content: { type: "text", text: opts.sampling },
    model: "client.mjs-canned",
    stopReason: "endTurn",
  }));
}
if (opts.elicit !== undefined) {
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: "accept", content: opts.elicit }));
}
const transport = new TapTransport(inner);
if (inner instanceof StdioClientTransport) {
  const start = transport.start.bind(transport);
  transport.start = async () => {
    await start();
    stdioChild = inner._process ?? null;
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms).unref());
}

// Stop the stdio server: close its stdin, give it `grace` ms to exit, then SIGTERM, then SIGKILL.
// Returns how it ended: {code, signal, by: "already-exited"|"eof"|"SIGTERM"|"SIGKILL"|"unknown"}.
async function stopChild(child, graceMs) {
  const status = () =>
    child.exitCode !== null || child.signalCode !== null ? { code: child.exitCode, signal: child.signalCode } : null;
  const early = status();
  if (early) return { ...early, by: "already-exited" };
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  try { child.stdin?.end(); } catch { /* ignore */ }
  let r = await Promise.race([exited, sleep(graceMs).then(() => null)]);
  if (r) return { ...r, by: "eof" };
  try { child.kill("SIGTERM"); } catch { /* ignore */ }
  r = await Promise.race([exited, sleep(2000).then(() => null)]);
  if (r) return { ...r, by: "SIGTERM" };
  try { child.kill("SIGKILL"); } catch { /* ignore */ }
  r = await Promise.race([exited, sleep(1000).then(() => null)]);
  return r ? { ...r, by: "SIGKILL" } : { code: null, signal: null, by: "unknown" };
}

let cleaningUp = false;
async function cleanupAndExit(code, { fast = false } = {}) {
  if (cleaningUp) return;
  cleaningUp = true;
  const hardStop = setTimeout(() => {
    if (stdioChild) { try { stdioChild.kill("SIGKILL"); } catch { /* gone */ } }
    emit();
    process.exit(code);
  }, (fast ? 0 : opts.grace) + 5000);
  try {
    if (stdioChild) {
      // On timeout or signal the server may be wedged: don't wait for it to notice stdin EOF.
      out.serverExit = await stopChild(stdioChild, fast ? 0 : opts.grace);
    } else {
      if (inner instanceof StreamableHTTPClientTransport && inner.sessionId) {
        await Promise.race([inner.terminateSession().catch(() => {}), sleep(1000)]); // DELETE /mcp
      }
      await Promise.race([client.close().catch(() => {}), sleep(1000)]);
    }
  } finally {
    clearTimeout(hardStop);
    emit();
    process.exit(code);
  }
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    out.error = out.error ?? `interrupted by ${sig}`;
    cleanupAndExit(1, { fast: true });
  });
}

const deadlineMs = Math.round(opts.timeout * 1000);
const deadline = setTimeout(() => {
  out.error = `timeout after ${opts.timeout} s`;
  cleanupAndExit(1, { fast: true });
}, deadlineMs);

async function run() {
  const reqOpts = { timeout: deadlineMs };
  await client.connect(transport, reqOpts);
  out.serverInfo = client.getServerVersion() ?? null;
  out.capabilities = client.getServerCapabilities() ?? null;
  if (opts.logLevel) await client.setLoggingLevel(opts.logLevel, reqOpts);
  const listed = await client.listTools(undefined, reqOpts);
  out.tools = listed.tools.map((t) => t.name);
  if (opts.tool) {
    const callOpts = { ...reqOpts };
    if (opts.progress) {
      callOpts.onprogress = () => {}; // the tap records notifications/progress; this makes the SDK send a progressToken
      callOpts.resetTimeoutOnProgress = false;
    }
    out.call = await client.callTool({ name: opts.tool, arguments: opts.args }, undefined, callOpts);
  }
  if (opts.read) {
    out.read = await client.readResource({ uri: opts.read }, reqOpts);
  }
  if (opts.linger > 0) await sleep(opts.linger);
}

let code = 0;
try {
  await run();
} catch (e) {
  if (!cleaningUp) {
    out.error = errMessage(e);
    if (e && typeof e === "object" && "code" in e && typeof e.code === "number") out.errorCode = e.code;
  }
  code = 1;
}
clearTimeout(deadline);
await cleanupAndExit(code);
