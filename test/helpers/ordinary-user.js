'use strict';
// Runs k3-core as an ordinary user, as a user's cron job would: the tests
// (as root) create their own users with useradd, give them a readable copy
// of k3-core, and run a child Node process as that user with setpriv, with
// HOME set, no XDG_RUNTIME_DIR and no login session.
//
//   const u = ordinaryUser();                        // has a subordinate range
//   const r = await runAs(u, async (K3Core, input) => { ... return value; }, input);
//   r.code, r.stdout, r.stderr, r.result (value), r.error ({name, message, details, full})
//
// The function runs in the child: it sees only K3Core and input (JSON), not
// the test's variables. Fixtures the child reads must be readable by the
// user (giveTo).
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { whichSync } = require('./registry');

const repo = path.resolve(__dirname, '..', '..');

// The user Debian's useradd gives a subordinate range, and one with none.
const WITH_RANGE = 'k3user';
const WITHOUT_RANGE = 'k3nosub';

// Why the tests cannot run as an ordinary user here, or ''.
function ordinaryUserReasons() {
  const reasons = [];
  if (process.getuid() !== 0) reasons.push('not root (the tests create their users)');
  for (const [tool, pkg] of [['setpriv', 'util-linux'], ['useradd', 'passwd'], ['newuidmap', 'uidmap'], ['newgidmap', 'uidmap']]) {
    if (!whichSync(tool)) reasons.push(`${tool} is not installed (apt-get install ${pkg})`);
  }
  return reasons.join(', ');
}

function idOf(name, flag) {
  return Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
}

function exists(name) {
  try {
    idOf(name, '-u');
    return true;
  } catch {
    return false;
  }
}

// Removes the user's lines from a subordinate-ID file.
function dropSubordinate(file, name) {
  if (!fs.existsSync(file)) return;
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const kept = lines.filter((l) => !l.startsWith(`${name}:`));
  if (kept.length !== lines.length) fs.writeFileSync(file, kept.join('\n'));
}

function hasSubordinate(file, name) {
  return fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').some((l) => l.startsWith(`${name}:`));
}

// The user (created when missing): {name, uid, gid, home, subordinate}.
// subordinate: false gives a user with no lines in /etc/subuid and /etc/subgid.
function ordinaryUser({ subordinate = true } = {}) {
  const name = subordinate ? WITH_RANGE : WITHOUT_RANGE;
  if (!exists(name)) execFileSync('useradd', ['-m', name]);
  if (!subordinate) {
    dropSubordinate('/etc/subuid', name);
    dropSubordinate('/etc/subgid', name);
  } else if (!hasSubordinate('/etc/subuid', name) || !hasSubordinate('/etc/subgid', name)) {
    throw new Error(`useradd gave ${name} no subordinate range in /etc/subuid and /etc/subgid`);
  }
  const home = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':')[5];
  return { name, uid: idOf(name, '-u'), gid: idOf(name, '-g'), home, subordinate };
}

// Gives a tree (a fixture, a store) to the user.
function giveTo(user, dir) {
  execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, dir]);
}

// A copy of what `require('k3-core')` loads, readable by every user: the
// checkout may sit under a private home (/root). Made once per process.
let installed;
function readableInstall() {
  if (installed) return installed;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-user-install-'));
  fs.chmodSync(dir, 0o755);
  const binaries = require('../../js/binaries');
  const release = binaries.binaryDir();
  const files = ['index.js', 'package.json', 'js', 'golib/errcat/catalogue.json',
    ...[binaries.ADDON, binaries.LIBRARY, binaries.MONITOR, binaries.USERNS_HELPER].map((f) => path.join('build', 'Release', f))];
  for (const f of files) {
    const from = f.startsWith('build') ? path.join(release, path.basename(f)) : path.join(repo, f);
    fs.cpSync(from, path.join(dir, f), { recursive: true });
  }
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  installed = dir;
  return dir;
}

// What the child runs: the function, then its result or error on fd 3.
const CHILD = `'use strict';
const fs = require('node:fs');
const K3Core = require(process.env.K3_TEST_INSTALL);
const input = JSON.parse(process.env.K3_TEST_INPUT);
const fn = (${'%FN%'});
const report = (r) => fs.writeSync(3, JSON.stringify(r));
Promise.resolve().then(() => fn(K3Core, input)).then(
  (result) => { report({ result: result === undefined ? null : result }); },
  (e) => {
    report({ error: { name: e && e.name, message: e && e.message, details: e && e.details,
      full: e && typeof e.createFullMessage === 'function' ? e.createFullMessage() : String(e && e.stack) } });
    process.exitCode = 1;
  });
`;

// Runs fn(K3Core, input) in a Node process as user. env adds to (or, with
// a null value, takes away from) the child's environment: HOME, USER,
// LOGNAME and PATH, as cron gives. sysctls ({'user.max_user_namespaces':
// 0}) runs the child in a user namespace of its own that maps every ID to
// itself, where root first sets those of the namespace's own sysctls (the
// user.max_* limits): the child sees the host as it is but for them, and
// the host's own values are left alone.
function runAs(user, fn, input = {}, { env = {}, timeout = 120000, sysctls } = {}) {
  const install = readableInstall();
  const script = path.join(install, `child-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(script, CHILD.replace('%FN%', fn.toString()), { mode: 0o644 });
  const childEnv = {
    HOME: user.home, USER: user.name, LOGNAME: user.name,
    PATH: `${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    K3_TEST_INSTALL: install, K3_TEST_INPUT: JSON.stringify(input),
  };
  for (const [k, v] of Object.entries(env)) {
    if (v === null) delete childEnv[k];
    else childEnv[k] = v;
  }
  let command = whichSync('setpriv');
  let args = ['--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--', process.execPath, script];
  if (sysctls) {
    const set = Object.entries(sysctls).map(([name, value]) => `echo ${Number(value)} > /proc/sys/${name.split('.').join('/')}`);
    // The first shell waits for its ID maps (mapEveryId); the second, run
    // as the namespace's root once they are written, holds its capabilities.
    args = ['--user', '--', 'sh', '-c', 'read mapped && exec sh -c "$@"', 'sh', `${set.join(' && ')} && exec "$@"`, 'sh', command, ...args];
    command = whichSync('unshare');
  }
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: user.home, env: childEnv, stdio: [sysctls ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'] });
    if (sysctls) {
      mapEveryId(child.pid).then(() => child.stdin.end('mapped\n'), (e) => {
        child.kill('SIGKILL');
        reject(e);
      });
    }
    const out = { stdout: [], stderr: [], report: [] };
    child.stdout.on('data', (d) => out.stdout.push(d));
    child.stderr.on('data', (d) => out.stderr.push(d));
    child.stdio[3].on('data', (d) => out.report.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(script, { force: true });
      const r = { code, signal, stdout: Buffer.concat(out.stdout).toString(), stderr: Buffer.concat(out.stderr).toString() };
      const report = Buffer.concat(out.report).toString();
      try {
        Object.assign(r, report ? JSON.parse(report) : { error: { message: `the child reported nothing: ${r.stderr}` } });
      } catch (e) {
        r.error = { message: `the child's report is not JSON: ${report}` };
      }
      resolve(r);
    });
  });
}

// Maps every ID to itself in the user namespace process pid is entering
// (unshare --user), once it is in it.
async function mapEveryId(pid) {
  const own = fs.readlinkSync('/proc/self/ns/user');
  while (fs.readlinkSync(`/proc/${pid}/ns/user`) === own) await new Promise((r) => setTimeout(r, 2));
  for (const map of ['uid_map', 'gid_map']) fs.writeFileSync(`/proc/${pid}/${map}`, '0 0 4294967295\n');
}

module.exports = { ordinaryUserReasons, ordinaryUser, giveTo, readableInstall, runAs, WITH_RANGE, WITHOUT_RANGE };
