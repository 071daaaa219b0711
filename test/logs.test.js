'use strict';
// containerLogs read through the file, and followed as the container writes,
// with the host's runc in an image built here with a static busybox.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Readable, Transform } = require('node:stream');
const { pipeline } = require('node:stream/promises');

const { need } = require('./helpers/need');
const { containerRunReasons, busyboxStore } = require('./helpers/runc');

const skip = need(containerRunReasons());
const APPLETS = ['sh', 'echo', 'sleep', 'head', 'tr'];

let k3;
let store;
before(async () => {
  if (skip) return;
  store = await busyboxStore('k3-logs-', 'busybox:logs', APPLETS);
  ({ k3 } = store);
});

after(async () => {
  if (store) await store.remove();
});

// Writes "line 1" .. "line 20", one every 100 ms, then exits.
const COUNTING = ['/bin/sh', '-c', 'i=1; while [ $i -le 20 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done'];
const numbered = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

async function started(name, cmd) {
  await k3.containerCore.createContainer('busybox:logs', { name, cmd });
  await k3.containerCore.startContainer(name);
}

// Waits (up to a minute) until ok() holds.
async function until(ok, what) {
  for (const end = Date.now() + 60000; !(await ok()); await new Promise((r) => setTimeout(r, 20))) {
    assert.ok(Date.now() < end, `waited a minute for ${what}`);
  }
}

// Lets a container that waits for /go go on.
async function letGo(name) {
  const go = path.join(store.tmp, 'go');
  fs.writeFileSync(go, '');
  await k3.containerCore.copyToContainer(name, go, '/');
}
const afterGo = (cmd) => ['/bin/sh', '-c', `${cmd.at(-1)}; while [ ! -e /go ]; do sleep 0.05; done`];

test('follow yields the lines as they are written and ends after the exit', { skip }, async () => {
  // It exits only once the first line has been seen.
  await started('counting', afterGo(COUNTING));
  const logs = k3.containerCore.containerLogs('counting', { follow: true });
  assert.ok(logs instanceof Readable);
  const seen = [];
  let stateAtFirst;
  for await (const entry of logs) {
    if (seen.length === 0) {
      stateAtFirst = (await k3.containerCore.inspectContainer('counting')).State;
      await letGo('counting');
    }
    assert.equal(entry.stream, 'stdout');
    assert.ok(!Number.isNaN(Date.parse(entry.time)));
    seen.push(entry.log);
  }
  assert.equal(stateAtFirst, 'running', 'the first line came while the container still ran');
  assert.deepEqual(seen, numbered(1, 20));
  assert.equal((await k3.containerCore.inspectContainer('counting')).State, 'exited');
});

test('follow with tail starts at the last lines; since leaves out older ones', { skip }, async () => {
  await started('tailed', COUNTING);
  await until(async () => (await k3.containerCore.containerLogs('tailed')).length >= 4, 'four lines');
  const tailed = [];
  for await (const entry of k3.containerCore.containerLogs('tailed', { follow: true, tail: 3 })) tailed.push(entry.log);
  const n = Number(tailed[0].split(' ')[1]);
  assert.ok(n >= 2 && n <= 18, `tail started at line ${n}`);
  assert.deepEqual(tailed, numbered(n, 20));

  const all = await k3.containerCore.containerLogs('tailed');
  const since = all[10].time;
  const later = [];
  for await (const entry of k3.containerCore.containerLogs('tailed', { follow: true, since })) later.push(entry.log);
  assert.deepEqual(later, all.filter((l) => l.time >= since).map((l) => l.log));
  assert.deepEqual((await k3.containerCore.containerLogs('tailed', { tail: 3 })).map((l) => l.log), numbered(18, 20));
});

test('an abort ends a follow promptly with an AbortError', { skip }, async () => {
  await started('endless', ['/bin/sh', '-c', 'while true; do echo tick; sleep 0.1; done']);
  const controller = new AbortController();
  const logs = k3.containerCore.containerLogs('endless', { follow: true, signal: controller.signal });
  let ticks = 0;
  let abortedAt;
  const err = await (async () => {
    for await (const entry of logs) {
      assert.equal(entry.log, 'tick');
      if (++ticks === 3) {
        abortedAt = Date.now();
        controller.abort();
      }
    }
  })().then(() => assert.fail('the follow ended without an error'), (e) => e);
  assert.equal(err.name, 'AbortError');
  // Without the abort the follow never ends.
  assert.ok(Date.now() - abortedAt < 10000, `ended ${Date.now() - abortedAt} ms after the abort`);
  await k3.containerCore.killContainer('endless', { signal: 'KILL' }).catch(() => {});
});

test('one line of 6 MB without a newline: both forms read it, in pieces of at most 16 KiB', { skip }, async () => {
  const size = 6_000_000;
  await started('long-line', ['/bin/sh', '-c', `head -c ${size} /dev/zero | tr '\\0' x; sleep 0.3`]);
  const followed = [];
  for await (const entry of k3.containerCore.containerLogs('long-line', { follow: true })) followed.push(entry.log);
  const read = (await k3.containerCore.containerLogs('long-line')).map((l) => l.log);
  assert.deepEqual(followed, read);
  assert.equal(read.join('').length, size);
  assert.ok(read.every((piece) => /^x+$/.test(piece) && piece.length <= 16 << 10));
  assert.equal((await k3.containerCore.containerLogs('long-line', { tail: 1 }))[0].log, read.at(-1));
});

test('the followed form pipes through a Transform', { skip }, async () => {
  await started('piped', ['/bin/sh', '-c', 'echo one; sleep 0.2; echo two >&2; echo three']);
  const out = [];
  await pipeline(
    k3.containerCore.containerLogs('piped', { follow: true }),
    new Transform({ objectMode: true, transform: (entry, _, done) => done(null, `${entry.stream}:${entry.log}`) }),
    async function (source) {
      for await (const s of source) out.push(s);
    },
  );
  assert.deepEqual(out.sort(), ['stderr:two', 'stdout:one', 'stdout:three']);
});

test('a reader that does not read holds at most one batch beyond the high-water mark', { skip }, async () => {
  await started('fast', afterGo(['i=1; while [ $i -le 20000 ]; do echo $i; i=$((i+1)); done']));
  const logs = k3.containerCore.containerLogs('fast', { follow: true });
  // Everything is written, and the reader has had all it can take.
  await until(async () => (await k3.containerCore.containerLogs('fast', { tail: 1 }))[0]?.log === '20000', 'the last line');
  await until(() => logs.readableLength >= logs.readableHighWaterMark, 'the reader to fill up');
  assert.ok(logs.readableLength <= 2 * logs.readableHighWaterMark, `${logs.readableLength} entries held`);
  let expected = 1;
  await letGo('fast');
  for await (const entry of logs) assert.equal(entry.log, String(expected++));
  assert.equal(expected, 20001);
});
