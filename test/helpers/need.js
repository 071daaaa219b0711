'use strict';
// What a test file needs from the machine (a registry, a peer such as podman
// or skopeo, root, mounts). On a developer's machine a missing need skips the
// tests that depend on it, with its reason printed. Under CI (CI=true) a
// missing need is a failing test instead, so a green CI means every oracle
// and peer ran.
const { test } = require('node:test');

const reported = new Set();

// need(reason) takes a reason a need is missing (or a falsy value when it is
// met) and returns what node:test's `skip` option wants.
function need(reason) {
  if (!reason) return false;
  if (process.env.CI === 'true' && !reported.has(reason)) {
    reported.add(reason);
    test(`CI provides what the tests need: ${reason}`, () => {
      throw new Error(`CI=true, and a test's tool or peer is missing: ${reason}`);
    });
  }
  return reason;
}

module.exports = { need };
