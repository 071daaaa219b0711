'use strict';
// Starts throw-away local Docker registries (distribution's `docker-registry`)
// for tests. Everything listens on 127.0.0.1 only and lives in a temp dir.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const READY_TIMEOUT_MS = 60000;
const KILL_GRACE_MS = 2000;
const BIND_ATTEMPTS = 5;
const STDERR_KEEP = 64 * 1024;

// Registries that have not been stopped yet; killed on process exit so a
// crashing or forgetful test never leaves a registry behind.
const live = new Set();

process.on('exit', () => {
  for (const reg of live) {
    try { reg.child.kill('SIGKILL'); } catch { /* already gone */ }
    try { fs.rmSync(reg.dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
  live.clear();
});

// Returns the absolute path of `cmd` if it is an executable on PATH, else null.
function whichSync(cmd) {
  if (cmd.includes('/')) return isExecutable(cmd) ? cmd : null;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, cmd);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function registryBinary() {
  if (isExecutable('/usr/bin/docker-registry')) return '/usr/bin/docker-registry';
  return whichSync('docker-registry');
}

// null when registries can be started, otherwise a reason to print when skipping.
function registryAvailable() {
  return registryBinary() ? null : 'docker-registry is not installed';
}

// Asks the kernel for a free port. Another process may grab it before the
// registry binds, which is why startRegistry retries on "address in use".
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// htpasswd -B: docker-registry only accepts bcrypt hashes.
function writeHtpasswd(file, { username, password }) {
  if (!whichSync('htpasswd')) {
    throw new Error('htpasswd (apache2-utils) is needed for a registry with auth');
  }
  const line = execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' });
  fs.writeFileSync(file, line.trim() + '\n');
}

// The config is YAML, but JSON is valid YAML, so we write JSON and avoid any
// hand-rolled YAML quoting.
function writeConfig(dir, port, htpasswdFile) {
  const config = {
    version: 0.1,
    log: { level: 'error', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: path.join(dir, 'data') },
      delete: { enabled: true },
      // No background upload purging: it would only touch our temp dir anyway.
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}`, secret: 'k3-core-test-secret' },
  };
  if (htpasswdFile) {
    config.auth = { htpasswd: { realm: 'k3-core-test', path: htpasswdFile } };
  }
  const file = path.join(dir, 'config.yml');
  fs.writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}

// REGISTRY_* variables override the config file; drop any inherited ones.
function cleanEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('REGISTRY_')) env[key] = value;
  }
  return env;
}

function spawnRegistry(binary, configFile) {
  const child = spawn(binary, ['serve', configFile], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const state = { child, output: '', exited: false, exitCode: null, exitSignal: null };
  // Always drain the pipes, otherwise a chatty registry blocks on a full pipe.
  const keep = (chunk) => {
    state.output = (state.output + chunk.toString()).slice(-STDERR_KEEP);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  state.exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      state.exited = true;
      state.exitCode = code;
      state.exitSignal = signal;
      resolve();
    });
    child.on('error', (err) => {
      state.output += `\nspawn error: ${err.message}`;
      state.exited = true;
      resolve();
    });
  });
  // Do not keep the test process alive just because a registry runs; the
  // 'exit' handler above cleans up whatever a test forgot to stop.
  child.unref();
  child.stdout.unref();
  child.stderr.unref();
  return state;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls GET /v2/ until the registry answers as expected, the process dies,
// or the timeout passes. Returns 'ready', 'exited' or 'timeout'.
async function waitReady(state, url, withAuth) {
  const expected = withAuth ? 401 : 200;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (state.exited) return 'exited';
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === expected) return 'ready';
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  return state.exited ? 'exited' : 'timeout';
}

async function killAndWait(state) {
  if (state.exited) return;
  state.child.ref(); // keep the event loop alive until it is really gone
  state.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!state.exited) state.child.kill('SIGKILL');
  }, KILL_GRACE_MS);
  await state.exitPromise;
  clearTimeout(timer);
}

async function startRegistry({ auth } = {}) {
  const binary = registryBinary();
  if (!binary) throw new Error('docker-registry is not installed');
  if (auth && (!auth.username || typeof auth.password !== 'string')) {
    throw new Error('startRegistry: auth must be { username, password }');
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-registry-'));
  let htpasswdFile = null;
  try {
    if (auth) {
      htpasswdFile = path.join(dir, 'htpasswd');
      writeHtpasswd(htpasswdFile, auth);
    }
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  let lastFailure = '';
  for (let attempt = 1; attempt <= BIND_ATTEMPTS; attempt++) {
    const port = await freePort();
    const configFile = writeConfig(dir, port, htpasswdFile);
    const url = `http://127.0.0.1:${port}`;
    const state = spawnRegistry(binary, configFile);
    const entry = { child: state.child, dir };
    live.add(entry);

    const outcome = await waitReady(state, url, Boolean(auth));
    if (outcome === 'ready') {
      let stopped = null;
      const stop = () => {
        // Idempotent: calling stop() twice waits for the same shutdown.
        if (!stopped) {
          stopped = (async () => {
            await killAndWait(state);
            live.delete(entry);
            fs.rmSync(dir, { recursive: true, force: true });
          })();
        }
        return stopped;
      };
      return {
        host: `127.0.0.1:${port}`,
        port,
        url,
        dir,
        auth: auth ? { username: auth.username, password: auth.password } : null,
        stop,
        // Output seen so far; handy when a test wants to explain a failure.
        logs: () => state.output,
      };
    }

    await killAndWait(state);
    live.delete(entry);
    lastFailure =
      `docker-registry ${outcome === 'timeout' ? `did not answer GET ${url}/v2/ within ${READY_TIMEOUT_MS} ms`
        : `exited (code ${state.exitCode}, signal ${state.exitSignal})`}` +
      `\n--- registry output ---\n${state.output.trim() || '(none)'}`;
    // Only a lost race for the port is worth another try.
    if (!/address already in use/i.test(state.output)) break;
  }

  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`could not start docker-registry: ${lastFailure}`);
}

module.exports = { startRegistry, registryAvailable, whichSync };
