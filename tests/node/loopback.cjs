// Preload for servers that call listen(port) without a host (e.g. server-everything,
// whose express app does `app.listen(process.env.PORT || 3001)` and so binds every
// interface). Usage:  node --require ./tests/node/loopback.cjs <server.js> ...
//
// - Any net/http listen() on a TCP port that does not name a host is bound to
//   LOOPBACK_HOST (default 127.0.0.1). Explicit hosts are left alone, except that
//   0.0.0.0 / :: are also forced to LOOPBACK_HOST.
// - Once listening, prints one line to stderr:
//     LOOPBACK_LISTENING {"host":"127.0.0.1","port":43211}
//   so PORT=0 (ephemeral port) can be used and the real port read back.
"use strict";
const net = require("node:net");

const HOST = process.env.LOOPBACK_HOST || "127.0.0.1";
const WILDCARD = new Set(["0.0.0.0", "::", "", undefined, null]);
const origListen = net.Server.prototype.listen;

function isPipe(v) {
  return typeof v === "string" && !(Number(v) >= 0);
}

net.Server.prototype.listen = function patchedListen(...args) {
  if (args.length > 0 && args[0] !== null && typeof args[0] === "object" && !Array.isArray(args[0])) {
    // listen(options[, cb]) — options.port/host, options.path (pipe), or a handle
    const opts = args[0];
    if (opts.path === undefined && opts.handle === undefined && opts._handle === undefined && opts.fd === undefined
        && WILDCARD.has(opts.host)) {
      args[0] = { ...opts, host: HOST };
    }
  } else if (args.length > 0 && (typeof args[0] === "number" || (typeof args[0] === "string" && !isPipe(args[0])))) {
    // listen(port[, host][, backlog][, cb])
    if (typeof args[1] === "string") {
      if (WILDCARD.has(args[1])) args[1] = HOST;
    } else {
      args.splice(1, 0, HOST);
    }
  } else if (args.length === 0 || typeof args[0] === "function") {
    // listen([cb]) — random port on all interfaces
    args.unshift(0, HOST);
  }
  this.once("listening", () => {
    const a = this.address();
    if (a && typeof a === "object") {
      process.stderr.write(`LOOPBACK_LISTENING ${JSON.stringify({ host: a.address, port: a.port })}\n`);
    }
  });
  return origListen.apply(this, args);
};
