#!/usr/bin/env node
'use strict';
// Prints the README's error tables from golib/errcat/catalogue.json, the one
// place the catalogue is written down; test/docs.test.js checks that the
// README holds exactly this output.
const catalogue = require('../golib/errcat/catalogue.json');

function table(op) {
  const rows = Object.entries(catalogue.operations[op]).map(([name, e]) =>
    `| \`${name}\` | ${e.statusCode} | ${e.type} | ${e.message} |`);
  return [`#### \`${op}\``, '', '| class | statusCode | type | message |', '|---|---|---|---|', ...rows].join('\n');
}

function tables() {
  return Object.keys(catalogue.operations).map(table).join('\n\n');
}

if (require.main === module) console.log(tables());
module.exports = { tables };
