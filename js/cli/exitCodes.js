'use strict';
// The k3 command's exit codes. Every error class of the catalogue has its
// own exit code, kept in exit-codes.json so that a code never changes once
// given (a new class takes the next free number): a script can tell
// ContainerNotFound from ImageNotFoundLocally from RegistryAuthenticationFailure.
// The command's own failures use codes under 10.
const catalogue = require('../../golib/errcat/catalogue.json');
const CODES = require('./exit-codes.json');

const OWN = {
  failure: { code: 1, what: 'an unexpected failure (not a k3-core error): a bug, printed with its stack' },
  usage: { code: 2, what: 'the command line is wrong: an unknown verb or option, a missing argument' },
  unsupported: { code: 3, what: 'the form is not supported yet (`k3 cp` out of a container)' },
};

function exitCodeOf(err) {
  const code = err && Object.hasOwn(CODES, err.name) ? CODES[err.name] : undefined;
  return Number.isInteger(code) ? code : OWN.failure.code;
}

// Every class of the catalogue with its exit code, statusCode and type, in
// exit-code order. A class without a code, or two classes with one code, is
// an error here, so the table and the command cannot drift from the
// catalogue.
function catalogueCodes() {
  const classes = new Map();
  const add = (name, entry) => {
    if (!classes.has(name)) classes.set(name, { name, code: CODES[name], statusCode: entry.statusCode, type: entry.type });
  };
  for (const [name, entry] of Object.entries(catalogue.common)) add(name, entry);
  for (const op of Object.values(catalogue.operations)) {
    for (const [name, entry] of Object.entries(op)) add(name, entry);
  }
  const byCode = new Map();
  for (const row of classes.values()) {
    if (!Number.isInteger(row.code)) throw new Error(`${row.name} has no exit code in js/cli/exit-codes.json`);
    if (byCode.has(row.code)) throw new Error(`exit code ${row.code} is both ${byCode.get(row.code).name} and ${row.name}`);
    byCode.set(row.code, row);
  }
  return [...byCode.values()].sort((a, b) => a.code - b.code);
}

// The README's table (between <!-- exit-codes:start --> and <!-- exit-codes:end -->).
function exitCodeTable() {
  const lines = ['| exit code | when |', '|---|---|'];
  for (const own of Object.values(OWN)) lines.push(`| ${own.code} | ${own.what} |`);
  for (const row of catalogueCodes()) lines.push(`| ${row.code} | \`${row.name}\` (${row.statusCode}, \`${row.type}\`) |`);
  return lines.join('\n');
}

module.exports = { OWN, exitCodeOf, catalogueCodes, exitCodeTable };

if (require.main === module) console.log(exitCodeTable());
