'use strict';
// inspectAnImage against a real docker-registry behind htpasswd auth:
// credentials given in postData, and the user's own auth files and
// credential helpers, as docker and podman read them.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const { startRegistry, registryAvailable } = require('./helpers/registry');
const images = require('./helpers/images');
const { runInChild } = require('./helpers/child');
const { need } = require('./helpers/need');

const skip = need(registryAvailable());
if (skip) console.log(`# skipping auth registry tests: ${skip}`);

const user = { username: 'k3user', password: 's3cret-pass' };
const k3 = new K3Core();
let reg;
let img;
let name;
let home;

before(async () => {
  if (skip) return;
  reg = await startRegistry({ auth: user });
  img = images.makeImage({ layers: [[{ path: 'secret.txt', content: 'private' }]], config: { Labels: { private: 'yes' } } });
  await images.pushImage(reg, 'private-repo/app', 'v1.0', img);
  name = `${reg.host}/private-repo/app`;
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-auth-'));
});

after(async () => {
  if (reg) await reg.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

async function failure(promise) {
  return promise.then(() => assert.fail('expected a rejection'), (e) => e);
}

test('right credentials in postData', { skip }, async () => {
  const out = await k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1.0', credentials: user });
  assert.equal(out.Digest, img.manifestDigest);
  assert.deepEqual(out.Labels, { private: 'yes' });
});

test('no credentials: RegistryAuthenticationFailure 401', { skip }, async () => {
  const err = await failure(k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1.0' }));
  assert.ok(err instanceof K3Core.errors.RegistryAuthenticationFailure, err.name);
  assert.equal(err.statusCode, 401);
  assert.equal(err.type, 'NETWORK_ERROR');
  assert.equal(err.message, 'Failed to authenticate with registry.');
  assert.equal(err.details.error, 'unauthorized: authentication required');
  assert.equal(err.details.imageName, name);
});

test('wrong password and wrong user: RegistryAuthenticationFailure', { skip }, async () => {
  for (const credentials of [{ ...user, password: 'wrong' }, { username: 'nobody', password: 'x' }]) {
    const err = await failure(k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1.0', credentials }));
    assert.ok(err instanceof K3Core.errors.RegistryAuthenticationFailure, err.name);
    assert.match(err.details.error, /^unauthorized: /);
  }
});

test('a registry token the registry does not accept: RegistryAuthenticationFailure', { skip }, async () => {
  const err = await failure(k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1.0', credentials: { registryToken: 'not-a-token' } }));
  assert.ok(err instanceof K3Core.errors.RegistryAuthenticationFailure, err.name);
});

test('credentials are not shared between calls with different credentials', { skip }, async () => {
  await k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1.0', credentials: user });
  const err = await failure(k3.imageCore.inspectAnImage(name, { imageName: name, imageTag: 'v1.0', credentials: { ...user, password: 'wrong' } }));
  assert.ok(err instanceof K3Core.errors.RegistryAuthenticationFailure);
});

test('seed 001 pattern 2: first without auth, then with credentials', { skip }, async () => {
  const inspectPrivateImage = async (imageName, imageTag, credentials) => {
    try {
      return await k3.imageCore.inspectAnImage(imageName, { imageName, imageTag });
    } catch (error) {
      if (error.statusCode === 401) {
        return k3.imageCore.inspectAnImage(imageName, { imageName, imageTag, credentials });
      }
      throw error;
    }
  };
  const out = await inspectPrivateImage(name, 'v1.0', user);
  assert.equal(out.Digest, img.manifestDigest);
});

const inspectSnippet = (n) => `done(await new K3Core().imageCore.inspectAnImage(${JSON.stringify(n)}, { imageName: ${JSON.stringify(n)}, imageTag: 'v1.0' }));`;
const basicAuth = Buffer.from(`${user.username}:${user.password}`).toString('base64');

test('credentials from ~/.docker/config.json', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(home, 'docker-'));
  fs.mkdirSync(path.join(dir, '.docker'));
  fs.writeFileSync(path.join(dir, '.docker', 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: basicAuth } } }));
  const out = await runInChild(inspectSnippet(name), { HOME: dir, DOCKER_CONFIG: '', REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '' });
  assert.equal(out.Digest, img.manifestDigest, JSON.stringify(out));
});

test('credentials from $DOCKER_CONFIG', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(home, 'dockercfg-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: basicAuth } } }));
  const out = await runInChild(inspectSnippet(name), { HOME: fs.mkdtempSync(path.join(home, 'empty-')), DOCKER_CONFIG: dir, REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '' });
  assert.equal(out.Digest, img.manifestDigest, JSON.stringify(out));
});

test('credentials from a Docker credential helper', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(home, 'helper-'));
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  // A real helper process speaking the docker-credential-helpers protocol:
  // the server URL on stdin, {Username, Secret} on stdout.
  const helper = path.join(bin, 'docker-credential-k3test');
  fs.writeFileSync(helper, `#!/bin/sh
[ "$1" = get ] || exit 1
read server
echo "$server" >> "${dir}/asked"
printf '{"ServerURL":"%s","Username":"${user.username}","Secret":"${user.password}"}' "$server"
`, { mode: 0o755 });
  fs.mkdirSync(path.join(dir, '.docker'));
  fs.writeFileSync(path.join(dir, '.docker', 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'k3test' } }));
  const out = await runInChild(inspectSnippet(name), { HOME: dir, DOCKER_CONFIG: '', PATH: `${bin}:${process.env.PATH}` });
  assert.equal(out.Digest, img.manifestDigest, JSON.stringify(out));
  assert.match(fs.readFileSync(path.join(dir, 'asked'), 'utf8'), new RegExp(reg.host.replace(/\./g, '\\.')));
});

test('credentials from Podman auth files ($REGISTRY_AUTH_FILE and $XDG_RUNTIME_DIR/containers/auth.json)', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(home, 'podman-'));
  const authFile = path.join(dir, 'auth.json');
  fs.writeFileSync(authFile, JSON.stringify({ auths: { [reg.host]: { auth: basicAuth } } }));
  const viaEnv = await runInChild(inspectSnippet(name), { HOME: dir, DOCKER_CONFIG: '', REGISTRY_AUTH_FILE: authFile, XDG_RUNTIME_DIR: '' });
  assert.equal(viaEnv.Digest, img.manifestDigest, JSON.stringify(viaEnv));

  const runtime = path.join(dir, 'run');
  fs.mkdirSync(path.join(runtime, 'containers'), { recursive: true });
  fs.copyFileSync(authFile, path.join(runtime, 'containers', 'auth.json'));
  const viaRuntime = await runInChild(inspectSnippet(name), { HOME: dir, DOCKER_CONFIG: '', REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: runtime });
  assert.equal(viaRuntime.Digest, img.manifestDigest, JSON.stringify(viaRuntime));
});

test('an auth file with wrong credentials gives RegistryAuthenticationFailure', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(home, 'wrong-'));
  fs.mkdirSync(path.join(dir, '.docker'));
  const bad = Buffer.from(`${user.username}:nope`).toString('base64');
  fs.writeFileSync(path.join(dir, '.docker', 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: bad } } }));
  const out = await runInChild(inspectSnippet(name), { HOME: dir, DOCKER_CONFIG: '' });
  assert.equal(out.thrown && out.thrown.name, 'RegistryAuthenticationFailure', JSON.stringify(out));
});

test('logging in after a 401 works in the same process', { skip }, async () => {
  // The process starts with no credentials, fails, then the user writes
  // ~/.docker/config.json (docker login) and tries again.
  const dir = fs.mkdtempSync(path.join(home, 'login-'));
  const out = await runInChild(`
    const fs = require('node:fs');
    const k3 = new K3Core();
    const n = ${JSON.stringify(name)};
    const first = await k3.imageCore.inspectAnImage(n, { imageName: n, imageTag: 'v1.0' }).then(() => 'ok', (e) => e.name);
    fs.mkdirSync(${JSON.stringify(path.join(dir, '.docker'))});
    fs.writeFileSync(${JSON.stringify(path.join(dir, '.docker', 'config.json'))}, JSON.stringify({ auths: { [${JSON.stringify(reg.host)}]: { auth: ${JSON.stringify(basicAuth)} } } }));
    const second = await k3.imageCore.inspectAnImage(n, { imageName: n, imageTag: 'v1.0' });
    done({ first, second: second.Digest });`, { HOME: dir, DOCKER_CONFIG: '', REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '' });
  assert.deepEqual(out, { first: 'RegistryAuthenticationFailure', second: img.manifestDigest });
});

test('a credential helper that is not installed is a GenericFailure that names it', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(home, 'nohelper-'));
  fs.mkdirSync(path.join(dir, '.docker'));
  fs.writeFileSync(path.join(dir, '.docker', 'config.json'), JSON.stringify({ credsStore: 'k3-missing-helper' }));
  const out = await runInChild(inspectSnippet(name), { HOME: dir, DOCKER_CONFIG: '' });
  assert.equal(out.thrown && out.thrown.name, 'GenericFailure', JSON.stringify(out));
  assert.equal(out.thrown.message, 'Generic failure during image inspection.');
  assert.match(out.thrown.details.error, /docker-credential-k3-missing-helper/);
});
