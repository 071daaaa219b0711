'use strict';
// Operation logging through the logger a user gives `new K3Core({logger})`:
// anything with console-like methods (console, pino, winston). Silent when
// none is given.
const LEVELS = ['debug', 'info', 'warn', 'error'];

function wrap(logger) {
  const out = {};
  for (const level of LEVELS) {
    const fn = logger && typeof logger[level] === 'function' ? logger[level].bind(logger) : null;
    out[level] = fn ? (msg, fields) => { try { fn(msg, fields); } catch { /* a logger never breaks a call */ } } : () => {};
  }
  return out;
}

// Runs one operation, logging its start, outcome and duration.
async function logged(log, op, fields, fn) {
  const started = process.hrtime.bigint();
  log.debug(`k3-core ${op} started`, { op, ...fields });
  try {
    const result = await fn();
    log.info(`k3-core ${op} succeeded`, { op, ...fields, ms: elapsedMs(started) });
    return result;
  } catch (err) {
    const level = err && err.statusCode >= 500 ? 'error' : 'warn';
    log[level](`k3-core ${op} failed: ${err && err.name}`, { op, ...fields, ms: elapsedMs(started), error: err && err.details });
    throw err;
  }
}

function elapsedMs(started) {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

module.exports = { wrap, logged };
