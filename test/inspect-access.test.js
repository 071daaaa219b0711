'use strict';
// inspectAnImage remembers what it read from a registry, but a remembered
// image is only given to a caller the registry lets read it now: with the
// caller's own credentials, under the repository the caller named. A real
// docker-registry behind htpasswd auth answers; a small proxy in front of it
// counts what k3-core asks.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping access tests: ${skip}`);

const user = { username: 'k3user', password: 's3cret-pass' };
const credentialsBy = { good: user, wrong: { ...user, password: 'wrong' }, missing: undefined };
const k3 = new K3Core();
let reg;
let other;

before(async () => {
  if (skip) return;
  reg = await startRegistry({ auth: user });
  other = images.makeImage({ layers: [[{ path: 'public.txt', content: 'other' }]], config: { Labels: { other: 'yes' } } });
  await images.pushImage(reg, 'other-repo/app', 'v1.0', other);
});

after(async () => {
  if (reg) await reg.stop();
});

let pushed = 0;
// A private image no call has seen yet, so the first call of a test meets a
// cold cache. Only its manifest is new (an annotation), so a push is one PUT.
async function pushPrivate() {
  pushed += 1;
  const tag = `v${pushed}`;
  const img = images.makeImage({
    layers: [[{ path: 'secret.txt', content: 'private' }]],
    config: { Labels: { private: 'yes' } },
    annotations: { serial: String(pushed) },
  });
  await images.pushImage(reg, 'private-repo/app', tag, img);
  return { img, tag };
}

// Every way to ask: whose credentials, by tag or by the private digest,
// under the private image's repository or the other one.
const calls = [];
for (const creds of Object.keys(credentialsBy)) {
  for (const by of ['tag', 'digest']) {
    for (const repo of ['own', 'other']) calls.push({ creds, by, repo });
  }
}
const label = (c) => `${c.creds} credentials, by ${c.by}, ${c.repo} repository`;
const find = (creds, by, repo) => calls.find((c) => c.creds === creds && c.by === by && c.repo === repo);

function inspect(host, priv, c) {
  const imageName = `${host}/${c.repo === 'own' ? 'private-repo/app' : 'other-repo/app'}`;
  const imageTag = c.by === 'digest' ? priv.img.manifestDigest : (c.repo === 'own' ? priv.tag : 'v1.0');
  const postData = { imageName, imageTag };
  if (credentialsBy[c.creds]) postData.credentials = credentialsBy[c.creds];
  return k3.imageCore.inspectAnImage(imageName, postData);
}

// What the registry itself would answer this call, checked against what k3-core gave.
async function expectRegistryAnswer(priv, c) {
  const what = label(c);
  const result = await inspect(reg.host, priv, c).then((out) => ({ out }), (err) => ({ err }));
  if (c.creds !== 'good') {
    assert.equal(result.err && result.err.name, 'RegistryAuthenticationFailure', `${what}: ${JSON.stringify(result.out || result.err)}`);
  } else if (c.repo === 'own') {
    assert.ok(result.out, `${what}: ${result.err}`);
    assert.equal(result.out.Digest, priv.img.manifestDigest, what);
    assert.deepEqual(result.out.Labels, { private: 'yes' }, what);
  } else if (c.by === 'tag') {
    assert.ok(result.out, `${what}: ${result.err}`);
    assert.equal(result.out.Digest, other.manifestDigest, what);
  } else {
    // The other repository does not hold the private manifest.
    assert.equal(result.err && result.err.name, 'ImageNotFoundInRegistry', `${what}: ${JSON.stringify(result.out || result.err)}`);
  }
}

function permutations(list) {
  if (list.length <= 1) return [list];
  return list.flatMap((x, i) => permutations([...list.slice(0, i), ...list.slice(i + 1)]).map((rest) => [x, ...rest]));
}

test('every order of good, wrong and missing credentials gets what the registry says, from a cold cache on', { skip }, async () => {
  // A good call by tag fills the same cache entry a good call by digest does.
  const few = [find('good', 'tag', 'own'), find('wrong', 'digest', 'own'), find('missing', 'digest', 'other'), find('good', 'digest', 'other')];
  for (const order of permutations(few)) {
    const priv = await pushPrivate();
    for (const c of order) await expectRegistryAnswer(priv, c);
  }
});

test('once the cache is warm, every call after every other call gets what the registry says', { skip }, async () => {
  const priv = await pushPrivate();
  await expectRegistryAnswer(priv, find('good', 'tag', 'own'));
  for (const a of calls) {
    for (const b of calls) {
      await expectRegistryAnswer(priv, a);
      await expectRegistryAnswer(priv, b);
    }
  }
});

// Forwards every request to the registry over keep-alive connections and
// records "METHOD path" of each.
async function countingProxy(target) {
  const agent = new http.Agent({ keepAlive: true });
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const upstream = http.request({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () => new Promise((resolve) => {
    server.close(resolve);
    server.closeAllConnections();
    agent.destroy();
  });
  return { host: `127.0.0.1:${server.address().port}`, seen, close };
}

test('a digest request asks the registry even when its image is cached: one HEAD', { skip }, async () => {
  const proxy = await countingProxy(reg);
  try {
    const priv = await pushPrivate();
    const good = find('good', 'digest', 'own');
    const first = await inspect(proxy.host, priv, good);
    assert.equal(first.Digest, priv.img.manifestDigest);

    proxy.seen.length = 0;
    const again = await inspect(proxy.host, priv, good);
    assert.deepEqual(again, first);
    assert.deepEqual(proxy.seen, [`HEAD /v2/private-repo/app/manifests/${priv.img.manifestDigest}`]);

    proxy.seen.length = 0;
    await inspect(proxy.host, priv, find('good', 'tag', 'own'));
    assert.deepEqual(proxy.seen, [`HEAD /v2/private-repo/app/manifests/${priv.tag}`]);

    await proxy.close();
    const err = await inspect(proxy.host, priv, good).then(() => assert.fail('the cached image was served without the registry'), (e) => e);
    assert.equal(err.name, 'RegistryConnectionFailure', err.message);
  } finally {
    await proxy.close();
  }
});
