// e2e/testlib/keeltest.js — helpers for Keel's node e2e tests.
//
// npm modules come from $KEEL_NODE_MODULES (tools/npm/node_modules, installed by
// tools/setup.sh); when it is unset the test FAILS (it never passes silently).
// Checks records named checks and keeps going; finish() sets the exit code.
'use strict';

const fs = require('fs');
const path = require('path');

function nodeModules() {
  const dir = process.env.KEEL_NODE_MODULES;
  if (!dir) {
    console.log('FAIL: KEEL_NODE_MODULES is not set (run with ' +
                '--test_env=KEEL_NODE_MODULES=<repo>/tools/npm/node_modules)');
    process.exit(1);
  }
  if (!fs.existsSync(path.join(dir, '@grpc', 'grpc-js'))) {
    console.log(`FAIL: KEEL_NODE_MODULES=${dir} has no @grpc/grpc-js (run tools/setup.sh)`);
    process.exit(1);
  }
  return dir;
}

// require() a package from KEEL_NODE_MODULES. Packages that require each other
// (grpc-reflection-js -> @grpc/grpc-js) resolve to the same copies.
function npm(name) {
  return require(path.join(nodeModules(), name));
}

function need(env) {
  const v = process.env[env];
  if (!v) {
    console.log(`FAIL: environment variable ${env} is not set`);
    process.exit(1);
  }
  return v;
}

class Checks {
  constructor(name) {
    this.name = name;
    this.failures = [];
    this.passes = 0;
  }

  ok(what, cond, detail) {
    if (cond) {
      this.passes++;
      console.log(`PASS: ${what}`);
    } else {
      this.failures.push(what);
      console.log(`FAIL: ${what}` + (detail !== undefined ? ` -- ${detail}` : ''));
    }
    return !!cond;
  }

  eq(what, got, want) {
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    return this.ok(what, g === w, `got ${g}, want ${w}`);
  }

  fail(what, detail) {
    return this.ok(what, false, detail);
  }

  note(text) {
    console.log(`NOTE: ${text}`);
  }

  // Awaits promise expecting a rejection with grpc status wantCode (a number).
  async code(what, promise, wantCode, wantDetails) {
    const status = npm('@grpc/grpc-js').status;
    const name = (c) => Object.keys(status).find((k) => status[k] === c) || String(c);
    try {
      await promise;
      return this.fail(what, `call succeeded, want ${name(wantCode)}`);
    } catch (e) {
      if (e.code === undefined) return this.fail(what, `unexpected error: ${e.stack || e}`);
      let ok = e.code === wantCode;
      let detail = `got ${name(e.code)} ${JSON.stringify(e.details)}, want ${name(wantCode)}`;
      if (wantDetails !== undefined) {
        ok = ok && e.details === wantDetails;
        detail += ` ${JSON.stringify(wantDetails)}`;
      }
      return this.ok(what, ok, detail);
    }
  }

  // Runs a block of checks; a throw inside is one failure, not a crash.
  async run(what, fn) {
    console.log(`--- ${what}`);
    try {
      await fn();
    } catch (e) {
      this.fail(`${what}: threw`, e && e.stack ? e.stack : String(e));
    }
  }

  finish() {
    if (this.failures.length) {
      console.log(`RESULT: ${this.name}: ${this.failures.length} check(s) failed ` +
                  `(${this.passes} passed):`);
      for (const f of this.failures) console.log(`  - ${f}`);
      process.exitCode = 1;
    } else {
      console.log(`RESULT: ${this.name}: all ${this.passes} checks passed`);
      process.exitCode = 0;
    }
  }
}

// Loads a .proto with @grpc/proto-loader; protoPath must end with importPath
// (e.g. keel/echo/v1/echo.proto) so the import root can be derived.
function loadProto(protoPath, importPath) {
  const protoLoader = npm('@grpc/proto-loader');
  const grpc = npm('@grpc/grpc-js');
  const abs = path.resolve(protoPath);
  if (!abs.endsWith(importPath)) throw new Error(`${abs} does not end with ${importPath}`);
  const root = abs.slice(0, abs.length - importPath.length);
  const def = protoLoader.loadSync(importPath, {
    includeDirs: [root],
    keepCase: true,
    longs: Number,
    enums: Number,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def);
}

// A grpc-js client for a protobufjs Service (e.g. one that came out of
// grpc-reflection-js, after root.resolveAll()): requests are built with
// fromObject, responses decoded to plain objects (longs as Number, defaults set).
function clientFromService(svc, addr) {
  const grpc = npm('@grpc/grpc-js');
  const def = {};
  for (const [name, m] of Object.entries(svc.methods)) {
    const req = m.resolvedRequestType;
    const res = m.resolvedResponseType;
    def[name] = {
      path: `/${svc.fullName.replace(/^\./, '')}/${name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: (o) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      requestDeserialize: (b) => req.decode(b),
      responseSerialize: (o) => Buffer.from(res.encode(o).finish()),
      responseDeserialize: (b) => res.toObject(res.decode(b), {longs: Number, defaults: true}),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(def, svc.name);
  return new Ctor(addr, grpc.credentials.createInsecure());
}

// Promise wrappers around grpc-js calls. unary resolves {response, metadata,
// status} and rejects with the ServiceError (which carries code, details and
// metadata = trailers).
function unary(client, method, request, opts = {}) {
  const grpc = npm('@grpc/grpc-js');
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata || {})) md.set(k, v);
    const callOpts = {deadline: Date.now() + (opts.timeoutMs || 10000)};
    let initial = null;
    let status = null;
    let response;
    let settled = false;
    const finish = () => {
      if (settled || status === null || response === undefined) return;
      settled = true;
      resolve({response, metadata: initial, status});
    };
    const call = client[method](request, md, callOpts, (err, resp) => {
      if (err) {
        err.initialMetadata = initial;
        settled = true;
        reject(err);
        return;
      }
      response = resp;
      finish();
    });
    call.on('metadata', (m) => { initial = m; });
    call.on('status', (s) => { status = s; finish(); });
    if (opts.onCall) opts.onCall(call);
  });
}

// Reads a server stream to its end: resolves {messages, status}; a non-OK
// status resolves too (status.code != 0) with the messages received before it.
function readStream(call) {
  return new Promise((resolve) => {
    const messages = [];
    let status = null;
    let ended = false;
    let error = null;
    const done = () => {
      if (status !== null && (ended || error)) resolve({messages, status, error});
    };
    call.on('data', (m) => messages.push(m));
    call.on('error', (e) => { error = e; done(); });
    call.on('end', () => { ended = true; done(); });
    call.on('status', (s) => { status = s; done(); });
  });
}

// Resolves with the next 'data' message of a stream, rejects on error/end or
// after timeoutMs.
function nextMessage(call, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(t);
      call.removeListener('data', onData);
      call.removeListener('error', onErr);
      call.removeListener('end', onEnd);
    };
    const onData = (m) => { cleanup(); resolve(m); };
    const onErr = (e) => { cleanup(); reject(e); };
    const onEnd = () => { cleanup(); reject(new Error('stream ended')); };
    const t = setTimeout(() => { cleanup(); reject(new Error(`no message in ${timeoutMs} ms`)); },
                         timeoutMs);
    call.on('data', onData);
    call.on('error', onErr);
    call.on('end', onEnd);
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function readFile(p) {
  return fs.readFileSync(p);
}

module.exports = {Checks, npm, need, nodeModules, loadProto, clientFromService, unary, readStream,
                  nextMessage, sleep, readFile};
