'use strict';
// The error classes, built from the catalogue the Go engine reads too
// (golib/errcat/catalogue.json), so each class, code, type, message and hint
// is written down once.
const catalogue = require('../golib/errcat/catalogue.json');

class K3Error extends Error {
  constructor(message, { statusCode = 500, type = 'GENERIC_ERROR', details = {}, cause, hint = [] } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = this.constructor.name;
    this.statusCode = statusCode;
    this.type = type;
    this.details = details;
    Object.defineProperty(this, 'hint', { value: hint, enumerable: false });
  }

  // One readable string: class, code, message, every detail, and how to fix it.
  createFullMessage() {
    const lines = [`${this.name} [${this.statusCode} ${this.type}]: ${this.message}`];
    const keys = Object.keys(this.details || {}).filter((k) => k !== 'type' && k !== 'statusCode');
    if (keys.length) {
      lines.push('Details:');
      for (const k of keys) lines.push(`  ${k}: ${formatValue(this.details[k])}`);
    }
    if (this.cause && this.cause.message && this.cause.message !== this.details.error) {
      lines.push(`Cause: ${this.cause.code ? `${this.cause.code}: ` : ''}${this.cause.message}`);
    }
    if (this.hint.length) {
      lines.push('How to solve:');
      for (const h of this.hint) lines.push(`  - ${h}`);
    }
    return lines.join('\n');
  }

  toJSON() {
    return { name: this.name, message: this.message, statusCode: this.statusCode, type: this.type, details: this.details };
  }
}

function formatValue(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// Every class name the catalogue knows, each once, in catalogue order.
const classes = { K3Error };
function defineClass(name) {
  if (!classes[name]) {
    // A named class expression, so stack traces and `name` read as documented.
    classes[name] = { [name]: class extends K3Error {} }[name];
  }
  return classes[name];
}
for (const name of Object.keys(catalogue.common)) defineClass(name);
for (const op of Object.values(catalogue.operations)) {
  for (const name of Object.keys(op)) defineClass(name);
}
// Node's own convention for aborted operations.
Object.defineProperty(classes.AbortError.prototype, 'code', { value: 'ABORT_ERR' });

function entryFor(op, className) {
  return (catalogue.operations[op] && catalogue.operations[op][className]) || catalogue.common[className];
}

// Builds the error of class className as operation op reports it.
function create(op, className, details = {}, cause) {
  const entry = entryFor(op, className) || entryFor(op, 'GenericFailure') || catalogue.common.GenericFailure;
  const Cls = classes[className] || classes.GenericFailure;
  // The documents' order: type, statusCode, the operation's inputs, error.
  const { error, ...inputs } = details;
  delete inputs.type;
  delete inputs.statusCode;
  const full = { type: entry.type, statusCode: entry.statusCode, ...inputs };
  if (error !== undefined) full.error = error;
  return new Cls(entry.message, { statusCode: entry.statusCode, type: entry.type, details: full, cause, hint: entry.hint });
}

// Rebuilds an error the engine sent across the boundary.
function fromWire(wire, fallbackOp) {
  let cause;
  if (wire.cause) {
    cause = new Error(wire.cause);
    if (wire.causeCode) cause.code = wire.causeCode;
  }
  return create(wire.op || fallbackOp, wire.class, wire.details, cause);
}

function abortError(op, details, reason) {
  return create(op, 'AbortError', { ...details, error: 'the operation was aborted' }, reason);
}

module.exports = { K3Error, classes, create, fromWire, abortError };
