'use strict';
// The one path into the Go engine: a method name and its arguments in, a
// Promise out. Everything a caller passes goes to the engine to validate; only
// what JSON cannot carry is dealt with here.
const path = require('node:path');
const errors = require('./errors');
const binaries = require('./binaries');

// libuv installs its SIGCHLD handler lazily and without SA_ONSTACK, which a
// Go thread that receives SIGCHLD cannot survive. Installing it before the Go
// library loads lets Go's start-up mark it SA_ONSTACK; keeping a listener
// means libuv never installs it again. (The engine re-checks on every call.)
if (require('node:worker_threads').isMainThread) process.on('SIGCHLD', () => {});

const binaryDir = binaries.binaryDir();
const addon = binaries.loadAddon(binaryDir);

function isAbortSignal(v) {
  return typeof AbortSignal !== 'undefined' && v instanceof AbortSignal;
}

// Serialises each positional argument on its own, so one that JSON cannot
// carry (a cycle, a BigInt) is reported by name by the engine's validation.
const monitor = path.join(binaryDir, binaries.MONITOR);
const userns = path.join(binaryDir, binaries.USERNS_HELPER);

function encodeRequest(args, root, runtime) {
  const parts = args.map((arg) => {
    try {
      const json = JSON.stringify(arg, (key, value) => {
        if (typeof value === 'bigint') throw new TypeError('a BigInt cannot be serialised');
        if (key === 'signal' && isAbortSignal(value)) return undefined;
        return value;
      });
      return json === undefined ? 'null' : json;
    } catch (e) {
      return JSON.stringify({ $k3unserializable: e.message });
    }
  });
  const env = JSON.stringify({ root: root || '', runtime: runtime || '', monitor, userns });
  return `${env.slice(0, -1)},"args":[${parts.join(',')}]}`;
}

// call(op, args, {root, signal, onProgress}) resolves with the engine's
// result or rejects with a K3Error subclass; never anything else.
function call(op, args, { root, runtime, signal, onProgress, details = {} } = {}) {
  if (signal && signal.aborted) return Promise.reject(errors.abortError(op, details, signal.reason));
  let started;
  try {
    started = addon.start(op, encodeRequest(args, root, runtime), onProgress && progressListener(onProgress));
  } catch (e) {
    return Promise.reject(errors.create(op, 'GenericFailure', { ...details, error: e.message }, e));
  }
  const [id, pending] = started;
  const settled = pending.then(
    (json) => JSON.parse(json),
    (json) => {
      throw errors.fromWire(JSON.parse(json), op);
    },
  );
  if (!signal) return settled;
  // An aborted call settles once the engine has stopped its work (an
  // aborted start first kills what it started): the caller may rely on
  // nothing of it running on. Work that ended before the abort reached it
  // resolves as usual.
  return new Promise((resolve, reject) => {
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      addon.cancel(id);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    settled.then(resolve, (err) => reject(aborted ? errors.abortError(op, details, signal.reason) : err))
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

// A user's progress callback never breaks the call it watches.
function progressListener(onProgress) {
  return (json) => {
    try {
      onProgress(JSON.parse(json));
    } catch {
      // ignored on purpose
    }
  };
}

module.exports = { call };
