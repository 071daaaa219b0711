'use strict';
// Runs a snippet in a fresh Node process. The Go engine reads its environment
// (HOME, DOCKER_CONFIG, PATH...) once, when the library loads, so tests of
// environment-driven behaviour need a process of their own.
const { execFile } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');

// Resolves with the value the snippet passes to `done(value)`; the snippet
// sees `K3Core` and `done` in scope and may await.
function runInChild(snippet, env = {}) {
  const program = `
    const K3Core = require(${JSON.stringify(root)});
    const done = (v) => { process.stdout.write(JSON.stringify(v)); };
    (async () => { ${snippet} })().catch((e) => {
      process.stdout.write(JSON.stringify({ thrown: { name: e.name, details: e.details, message: e.message } }));
    });`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', program], { env: { ...process.env, ...env }, timeout: 120000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`child failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`child printed no JSON: ${stdout}\n${stderr}`));
      }
    });
  });
}

module.exports = { runInChild };
