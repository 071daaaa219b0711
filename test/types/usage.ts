import K3Core = require('../..');
const k3 = new K3Core({ logger: console });
async function f(): Promise<void> {
  try {
    const info = await k3.imageCore.inspectAnImage('alpine', { imageName: 'alpine', imageTag: 'latest', signal: AbortSignal.timeout(10) });
    const size: number = info.LayersData.reduce((s, l) => s + l.Size, 0);
    console.log(size, info.Digest, info.PlatformDigest);
  } catch (e) {
    if (e instanceof K3Core.errors.ImageNotFoundInRegistry) console.log(e.createFullMessage(), e.details.error);
    if (e instanceof K3Core.K3Error) console.log(e.statusCode);
  }
}
f();

async function store(): Promise<void> {
  const k3 = new K3Core({ root: '/tmp/k3-types' });
  const pulled = await k3.imageCore.pullAnImage('alpine', 'latest', { onProgress: (e) => console.log(e.phase, e.current) });
  const images: K3Core.ImageSummary[] = await k3.imageCore.listImages();
  const c = await k3.containerCore.createContainer(pulled.RepoTags[0], { name: 'web', env: ['A=1'] });
  const running = await k3.containerCore.listContainers({ state: 'running' });
  const message: string = await k3.containerCore.exportContainer(c.Id, '/tmp/web.tar.gz', { signal: AbortSignal.timeout(1000) });
  await k3.containerCore.copyToContainer(c.Name, './file', '/etc/');
  const { createWriteStream, createReadStream } = await import('node:fs');
  await k3.containerCore.exportContainer(c.Id, createWriteStream('/tmp/web.tar.zst'), { compression: 'zstd' });
  const saved: K3Core.SaveImageResult = await k3.imageCore.saveImage('alpine', process.stdout, { compression: 'gzip' });
  await k3.imageCore.loadImage(createReadStream('/tmp/images.tar'));
  try {
    await k3.containerCore.exportContainer('nope', '/tmp/x.tar');
  } catch (e) {
    if (e instanceof K3Core.errors.InsufficientDiskSpaceForExport) console.log(e.details.requiredSpace);
  }
  for await (const ev of k3.events({ filters: { type: 'container', event: ['die'] }, since: 0, until: '2030-01-01T00:00:00Z', signal: AbortSignal.timeout(1000) })) {
    console.log(ev.Actor.Attributes.exitCode, ev.Action, ev.timeNano);
  }
  console.log(images.length, running.length, message, k3.root, saved.Path);
}
store();

async function running(): Promise<void> {
  const k3 = new K3Core({ runtime: 'runc' });
  const c = await k3.containerCore.createContainer('busybox', { cmd: ['true'], network: 'none', mounts: [{ source: '/srv', destination: '/srv', readOnly: true }] });
  await k3.containerCore.startContainer(c.Id);
  const { ExitCode } = await k3.containerCore.waitContainer(c.Id);
  const logs = await k3.containerCore.containerLogs(c.Id, { tail: 10 });
  await k3.containerCore.stopContainer(c.Id, { timeout: 5 });
  await k3.containerCore.createContainer('busybox', { capAdd: ['NET_ADMIN'], capDrop: ['MKNOD'], privileged: false, securityOpt: ['seccomp=unconfined', 'no-new-privileges'] });
  const ran = await k3.containerCore.execContainer(c.Id, ['cat'], { env: ['A=1'], user: 'nobody', workingDir: '/tmp', stdin: Buffer.from('hi'), signal: AbortSignal.timeout(1000) });
  const out: string = ran.stdout + ran.stderr;
  const shell = await k3.containerCore.execContainer(c.Id, ['sh'], {
    tty: true,
    onTerminal: (terminal) => {
      terminal.on('data', (d: Buffer) => process.stdout.write(d));
      terminal.resize(120, 40);
      terminal.write('exit 3\n');
    },
  });
  console.log(shell.ExitCode);
  const sample = await k3.containerCore.containerStats(c.Id, { interval: 500, signal: AbortSignal.timeout(5000) });
  const used: number = sample.cpu_stats.cpu_usage.total_usage - sample.precpu_stats.cpu_usage.total_usage;
  console.log(used, sample.CPUPerc, sample.MemUsage, sample.memory_stats.stats.rss, sample.pids_stats.limit ?? 'no limit');
  for await (const s of k3.containerCore.containerStats(c.Id, { stream: true, interval: 1000 })) {
    console.log(s.read, s.MemPerc, s.PIDs);
  }
  console.log(ExitCode, ran.ExitCode, out, logs.map((l) => l.log));
}
running();

async function archives(): Promise<void> {
  const k3 = new K3Core();
  const saved = await k3.imageCore.saveImage(['alpine:3.19', 'busybox'], '/tmp/images.tar.zst', {
    format: 'docker-archive', dockerVersion: '24', onProgress: (e) => console.log(e.phase, e.current, e.total),
  });
  const fromRegistry = await k3.imageCore.saveImage('registry.example:5000/app:1', '/tmp/app.tar', {
    source: 'registry', credentials: { username: 'u', password: 'p' }, architecture: 'arm64',
  });
  console.log(saved.Images[0].Id, fromRegistry.Format, fromRegistry.Path);
}
archives();

async function restore(): Promise<void> {
  const k3 = new K3Core();
  const changed: K3Core.ContainerChange[] = await k3.containerCore.containerChanges('web-1');
  const added = changed.filter((c) => c.Kind === 1).map((c) => c.Path);
  const fromFile = await k3.imageCore.importImage('/backups/web-1.tar.gz', { repository: 'web', tag: 'restored', changes: ['CMD ["/app/run"]'] });
  const { Readable } = await import('node:stream');
  const fromStream = await k3.imageCore.importImage(Readable.from([Buffer.alloc(1024)]), {
    platform: 'linux/arm64', message: 'nightly', signal: AbortSignal.timeout(1000), onProgress: (e) => console.log(e.phase, e.current, e.total),
  });
  try {
    await k3.imageCore.importImage('/nope.tar');
  } catch (e) {
    if (e instanceof K3Core.errors.InvalidImportArchive) console.log(e.details.error);
  }
  console.log(added, fromFile.Id, fromStream.RepoTags);
}
restore();
