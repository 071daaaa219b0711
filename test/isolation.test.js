'use strict';
// Containers are confined as docker confines them by default (seccomp
// profile, capabilities, masked and read-only paths), and only the create
// options capAdd, capDrop, privileged and securityOpt relax that. Real runc,
// images built here with a static busybox.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const K3Core = require('..');
const images = require('./helpers/images');
const { need } = require('./helpers/need');
const { containerRunReasons } = require('./helpers/runc');

const skip = need(containerRunReasons());
if (skip) console.log(`# skipping isolation tests: ${skip}`);

const APPLETS = ['sh', 'cat', 'grep', 'wc', 'unshare', 'echo', 'hostname', 'ls', 'mkdir', 'true'];
// docker's 14 default capabilities, as the kernel shows them in CapEff.
const DOCKER_CAPS = '00000000a80425fb';
const bit = (n) => 1n << BigInt(n);
const hex = (n) => n.toString(16).padStart(16, '0');

let tmp;
let k3;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k3-isolation-'));
  const img = images.makeImage({
    layers: [[
      { path: 'bin', type: 'dir' }, { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...APPLETS.map((a) => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
      { path: 'tmp', type: 'dir', mode: 0o1777 }, { path: 'proc', type: 'dir' }, { path: 'sys', type: 'dir' },
      { path: 'dev', type: 'dir' }, { path: 'etc', type: 'dir' },
    ]],
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
  });
  images.writeOciLayout(path.join(tmp, 'layout'), [{ image: img, refName: 'busybox:isolation' }]);
  k3 = new K3Core({ root: path.join(tmp, 'store') });
  await k3.imageCore.pullAnImage(path.join(tmp, 'layout'), 'busybox:isolation', { containerImageTransport: 'oci' });
});

// Every container here has exited by the time run() returns: nothing is
// mounted or running, so the store goes with the directory.
after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

let runs = 0;
// Runs script in a new container made with options; resolves its exit code
// and its stdout lines.
async function run(script, options = {}) {
  const name = `iso-${++runs}`;
  await k3.containerCore.createContainer('busybox:isolation', { name, cmd: ['/bin/sh', '-c', script], ...options });
  await k3.containerCore.startContainer(name);
  const { ExitCode } = await k3.containerCore.waitContainer(name);
  const stdout = (await k3.containerCore.containerLogs(name, { stderr: false })).map((l) => l.log);
  return { code: ExitCode, stdout };
}
async function statusOf(options, ...fields) {
  const { code, stdout } = await run(fields.map((f) => `grep '^${f}:' /proc/self/status`).join('; '), options);
  assert.equal(code, 0);
  return Object.fromEntries(stdout.map((l) => l.split(':\t')));
}

test('docker\'s seccomp profile refuses unshare without CAP_SYS_ADMIN; unconfined lets the same capabilities do it', { skip }, async () => {
  const script = 'unshare -U true && echo allowed || echo refused';
  const confined = await run(`${script}; grep '^Seccomp:' /proc/self/status`);
  assert.deepEqual(confined.stdout, ['refused', 'Seccomp:\t2']);
  const unconfined = await run(`${script}; grep '^Seccomp:' /proc/self/status`, { securityOpt: ['seccomp=unconfined'] });
  assert.deepEqual(unconfined.stdout, ['allowed', 'Seccomp:\t0'], 'a user namespace needs no capability: it was seccomp that refused');
  // The profile's rules follow the capabilities, as in docker.
  assert.deepEqual((await run(script, { capAdd: ['SYS_ADMIN'] })).stdout, ['allowed']);
});

test('a seccomp profile of the caller\'s own, as a file or as JSON', { skip }, async () => {
  const profile = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] };
  const file = path.join(tmp, 'no-mkdir.json');
  fs.writeFileSync(file, JSON.stringify(profile));
  const script = 'mkdir /tmp/d && echo made || echo refused';
  assert.deepEqual((await run(script)).stdout, ['made']);
  assert.deepEqual((await run(script, { securityOpt: [`seccomp=${file}`] })).stdout, ['refused']);
  assert.deepEqual((await run(script, { securityOpt: [`seccomp=${JSON.stringify(profile)}`] })).stdout, ['refused']);
});

test('docker\'s masked paths read empty and its read-only paths refuse writes, unless privileged or systempaths=unconfined', { skip }, async () => {
  const script = [
    'echo interrupts $(cat /proc/interrupts | wc -c)',
    'echo kcore $(cat /proc/kcore | wc -c)',
    'echo firmware $(ls /sys/firmware | wc -l)',
    'echo x-k3 > /proc/sys/kernel/hostname && echo sys written || echo sys refused',
  ].join('; ');
  const confined = await run(script);
  assert.deepEqual(confined.stdout, ['interrupts 0', 'kcore 0', 'firmware 0', 'sys refused']);
  for (const options of [{ privileged: true }, { securityOpt: ['systempaths=unconfined'] }]) {
    const [interrupts, , , sys] = (await run(script, options)).stdout;
    assert.notEqual(interrupts, 'interrupts 0', JSON.stringify(options));
    assert.equal(sys, 'sys written', JSON.stringify(options));
  }
});

test('docker\'s 14 capabilities, none inheritable or ambient; capAdd, capDrop and privileged change them', { skip }, async () => {
  assert.deepEqual(await statusOf({}, 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'),
    { CapInh: hex(0n), CapPrm: DOCKER_CAPS, CapEff: DOCKER_CAPS, CapBnd: DOCKER_CAPS, CapAmb: hex(0n) });
  const docker = BigInt(`0x${DOCKER_CAPS}`);
  const SYS_ADMIN = bit(21);
  const NET_RAW = bit(13);
  const MKNOD = bit(27);
  assert.equal((await statusOf({ capAdd: ['SYS_ADMIN'] }, 'CapEff')).CapEff, hex(docker | SYS_ADMIN));
  assert.equal((await statusOf({ capDrop: ['net_raw', 'CAP_MKNOD'] }, 'CapEff')).CapEff, hex(docker & ~NET_RAW & ~MKNOD));
  assert.equal((await statusOf({ capDrop: ['ALL'], capAdd: ['chown'] }, 'CapBnd')).CapBnd, hex(1n));
  const full = fs.readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\t(\w+)$/m)[1];
  assert.equal((await statusOf({ capAdd: ['ALL'] }, 'CapEff')).CapEff, full);
  assert.deepEqual(await statusOf({ privileged: true }, 'CapEff', 'Seccomp'), { CapEff: full, Seccomp: '0' });
});

test('no-new-privileges is off, as in docker, unless securityOpt asks for it', { skip }, async () => {
  assert.equal((await statusOf({}, 'NoNewPrivs')).NoNewPrivs, '0');
  assert.equal((await statusOf({ securityOpt: ['no-new-privileges'] }, 'NoNewPrivs')).NoNewPrivs, '1');
  assert.equal((await statusOf({ securityOpt: ['no-new-privileges=true'] }, 'NoNewPrivs')).NoNewPrivs, '1');
  const c = await k3.containerCore.inspectContainer(`iso-${runs}`);
  assert.deepEqual(c.Config.securityOpt, ['no-new-privileges=true'], 'inspect shows the options as given');
});

test('invalid isolation options are InvalidCreateContainerParameters, with the reason', { skip }, async () => {
  const cases = [
    [{ capAdd: 'SYS_ADMIN' }, 'options.capAdd must be an array of strings'],
    [{ capAdd: ['NOPE'] }, 'options.capAdd: unknown capability "NOPE"'],
    [{ capDrop: [''] }, 'options.capDrop: unknown capability ""'],
    [{ privileged: 'yes' }, 'options.privileged must be true or false'],
    [{ securityOpt: ['apparmor=unconfined'] }, /^options\.securityOpt "apparmor=unconfined": apparmor is not supported/],
    [{ securityOpt: ['seccomp'] }, /^options\.securityOpt "seccomp" is not one of seccomp=unconfined/],
    [{ securityOpt: ['no-new-privileges=maybe'] }, 'options.securityOpt "no-new-privileges=maybe": no-new-privileges takes true or false'],
    [{ securityOpt: ['seccomp=/no/such/profile.json'] }, 'options.securityOpt "seccomp=/no/such/profile.json": open /no/such/profile.json: no such file or directory'],
    [{ securityOpt: ['seccomp=profile.json'] }, /^options\.securityOpt "seccomp=profile.json": give unconfined, builtin/],
    [{ securityOpt: ['seccomp={bad'] }, /^options\.securityOpt "seccomp={bad": not a docker seccomp profile: /],
  ];
  for (const [options, reason] of cases) {
    const err = await k3.containerCore.createContainer('busybox:isolation', options).then(
      () => assert.fail(`${JSON.stringify(options)} was accepted`), (e) => e);
    assert.ok(err instanceof K3Core.errors.InvalidCreateContainerParameters, `${JSON.stringify(options)}: ${err.name}`);
    if (typeof reason === 'string') assert.equal(err.details.error, reason);
    else assert.match(err.details.error, reason);
  }
});
