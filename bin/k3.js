#!/usr/bin/env node
'use strict';
// The k3 command (`npx k3 --help`); see js/cli/main.js.
const { main } = require('../js/cli/main');

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
