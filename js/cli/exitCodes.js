'use strict';
// The k3 command's exit codes. A K3Error's code follows from its type and
// statusCode by one rule, so every class of the catalogue has one and a
// script can tell "not found" from "no room" from "the registry said no":
//   exit code = 10 × (the type's number below) + the last digit of statusCode
// The command's own failures use codes under 10.
const catalogue = require('../../golib/errcat/catalogue.json');

const TYPES = [
  'VALIDATION_ERROR', 'NOT_FOUND', 'DB_ERROR', 'NETWORK_ERROR', 'FILE_SYSTEM_ERROR',
  'CONTAINER_SERVICE_ERROR', 'IMAGE_SERVICE_ERROR', 'GENERIC_ERROR', 'ABORTED',
];

const OWN = {
  failure: { code: 1, what: 'an unexpected failure (not a k3-core error): a bug, printed with its stack' },
  usage: { code: 2, what: 'the command line is wrong: an unknown verb or option, a missing argument' },
  unsupported: { code: 3, what: 'the form is not supported yet (`k3 cp` out of a container)' },
};

function exitCodeOf({ type, statusCode }) {
  const n = TYPES.indexOf(type);
  if (n < 0 || !Number.isInteger(statusCode)) return OWN.failure.code;
  return 10 * (n + 1) + (statusCode % 10);
}

// Each distinct (statusCode, type) of the catalogue with its exit code and
// the classes that have it, in exit-code order.
function catalogueCodes() {
  const byCode = new Map();
  const add = (name, entry) => {
    const code = exitCodeOf(entry);
    const row = byCode.get(code) || { code, statusCode: entry.statusCode, type: entry.type, classes: new Set() };
    if (row.statusCode !== entry.statusCode || row.type !== entry.type) {
      throw new Error(`exit code ${code} would mean both ${row.statusCode} ${row.type} and ${entry.statusCode} ${entry.type}`);
    }
    row.classes.add(name);
    byCode.set(code, row);
  };
  for (const [name, entry] of Object.entries(catalogue.common)) add(name, entry);
  for (const op of Object.values(catalogue.operations)) {
    for (const [name, entry] of Object.entries(op)) add(name, entry);
  }
  return [...byCode.values()].sort((a, b) => a.code - b.code);
}

// The README's table (between <!-- exit-codes:start --> and <!-- exit-codes:end -->).
function exitCodeTable() {
  const lines = ['| exit code | when |', '|---|---|'];
  for (const own of Object.values(OWN)) lines.push(`| ${own.code} | ${own.what} |`);
  for (const row of catalogueCodes()) lines.push(`| ${row.code} | an error with statusCode ${row.statusCode} and type \`${row.type}\` |`);
  return lines.join('\n');
}

module.exports = { TYPES, OWN, exitCodeOf, catalogueCodes, exitCodeTable };

if (require.main === module) console.log(exitCodeTable());
