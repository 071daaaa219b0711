'use strict';
// One operation as the public classes run it: logged, with the caller's
// AbortSignal and progress callback taken from its options, and the store
// root of the K3Core it belongs to.
const { call } = require('./native');
const { logged } = require('./logger');

function isAbortSignal(v) {
  return typeof AbortSignal !== 'undefined' && v instanceof AbortSignal;
}

// options: the caller's options object (may hold signal and onProgress);
// details: the inputs every error of this call carries.
function run(ctx, op, args, options, details = {}) {
  const opts = options && typeof options === 'object' ? options : {};
  const signal = isAbortSignal(opts.signal) ? opts.signal : undefined;
  const onProgress = typeof opts.onProgress === 'function' ? opts.onProgress : undefined;
  return logged(ctx.log, op, details, () => call(op, args, { root: ctx.root, runtime: ctx.runtime, signal, onProgress, details }));
}

module.exports = { run };
