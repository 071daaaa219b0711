'use strict';
// k3-core as an ES module: `import K3Core, { errors } from 'k3-core'` in a
// project that has k3-core in its node_modules, beside require('k3-core'),
// and the same import type-checked by TypeScript's node16 resolution.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { need } = require('./helpers/need');

const repo = path.join(__dirname, '..');
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  tsc = null;
}

let project;
before(() => {
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-esm-'));
  fs.mkdirSync(path.join(project, 'node_modules'));
  fs.symlinkSync(repo, path.join(project, 'node_modules', 'k3-core'));
  fs.writeFileSync(path.join(project, 'package.json'), '{"name": "esm-user", "private": true}\n');
});
after(() => fs.rmSync(project, { recursive: true, force: true }));

// Runs a script file written into the project and returns its stdout's JSON.
function runIn(name, source) {
  fs.writeFileSync(path.join(project, name), source);
  return JSON.parse(execFileSync(process.execPath, [name], { cwd: project, encoding: 'utf8' }));
}

test('import K3Core, { errors } from k3-core runs real calls, with the classes require gives', () => {
  const out = runIn('main.mjs', `
    import K3Core, { errors, K3Error } from 'k3-core';
    import { createRequire } from 'node:module';
    const required = createRequire(import.meta.url)('k3-core');
    const k3 = new K3Core({ root: ${JSON.stringify(path.join(project, 'store'))} });
    const images = await k3.imageCore.listImages();
    const missing = await k3.containerCore.inspectContainer('no-such-container').then(() => null, (e) => e);
    console.log(JSON.stringify({
      images,
      sameModule: K3Core === required && errors === required.errors,
      notFound: missing instanceof errors.ContainerNotFound,
      k3Error: missing instanceof K3Error,
      name: missing.name,
      statusCode: missing.statusCode,
    }));
  `);
  assert.deepEqual(out, { images: [], sameModule: true, notFound: true, k3Error: true, name: 'ContainerNotFound', statusCode: 404 });
});

test('the ES module has every name the CommonJS module exports, and the default', () => {
  const out = runIn('names.mjs', `
    import * as ns from 'k3-core';
    import { createRequire } from 'node:module';
    const required = createRequire(import.meta.url)('k3-core');
    console.log(JSON.stringify({ esm: Object.keys(ns).sort(), cjs: Object.keys(required).sort() }));
  `);
  assert.deepEqual(out.esm, [...out.cjs, 'default'].sort());
  assert.ok(out.cjs.includes('errors') && out.cjs.includes('K3Error'), out.cjs.join(', '));
});

test("the exports map keeps require('k3-core') and require('k3-core/package.json')", () => {
  const out = runIn('main.cjs', `
    const K3Core = require('k3-core');
    console.log(JSON.stringify({
      version: require('k3-core/package.json').version,
      classes: typeof K3Core === 'function' && K3Core.errors.ContainerNotFound.prototype instanceof K3Core.K3Error,
    }));
  `);
  assert.deepEqual(out, { version: require('../package.json').version, classes: true });
});

test('TypeScript (node16 resolution) type-checks an .mts importing k3-core, with each named export typed', { skip: need(tsc ? false : 'typescript is not installed (npm install installs it)') }, () => {
  // Every name index.js exports, so a name added there and not to
  // index.d.mts fails here.
  const names = Object.keys(require('..')).sort();
  fs.writeFileSync(path.join(project, 'names.mts'), `import { ${names.join(', ')} } from 'k3-core';\nconsole.log(${names.join(', ')});\n`);
  fs.writeFileSync(path.join(project, 'usage.mts'), `
    import K3Core, { errors, K3Error } from 'k3-core';
    const k3 = new K3Core({ root: '/tmp/k3-esm-types' });
    export async function names(): Promise<string[]> {
      const images: K3Core.ImageSummary[] = await k3.imageCore.listImages();
      try {
        await k3.containerCore.inspectContainer('web-1');
      } catch (e) {
        if (e instanceof errors.ContainerNotFound) return [e.details.error];
        if (e instanceof K3Error) return [String(e.statusCode)];
      }
      return images.flatMap((i) => i.RepoTags);
    }
  `);
  fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'node16', moduleResolution: 'node16', strict: true, noEmit: true,
      types: ['node'], typeRoots: [path.join(repo, 'node_modules', '@types')],
    },
    files: ['names.mts', 'usage.mts'],
  }));
  const out = execFileSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
  assert.equal(out, '');
});
