'use strict';
// The k3 command: docker-like verbs over k3-core's library, for shell
// scripts. Arguments are parsed by commander, progress drawn by cli-progress
// (./progress.js); results go to stdout (as JSON with --json), progress and
// errors to stderr, and a failure's exit code follows from its error class
// (./exitCodes.js).
const { Command, Option, CommanderError } = require('commander');
const K3Core = require('../..');
const { OWN, exitCodeOf } = require('./exitCodes');
const { Progress, shortDigest } = require('./progress');
const { parseImageRef } = require('./refs');

class Unsupported extends Error {}

// Ends k3 with a code of the command's own (k3 exec exits as its command did).
class CommandExit {
  constructor(code) { this.code = code; }
}

// k3 exec -t: the command's terminal shown on stdout, sized as stdout is
// when that is a terminal, and typed into from stdin (raw, so that Ctrl-C
// reaches the command) with -i. Resolves once the terminal has closed.
async function execOnTerminal(k3, id, command, options, interactive, io) {
  const { stdin, stdout } = io;
  let closed;
  const onTerminal = (terminal) => {
    closed = new Promise((resolve) => terminal.on('close', resolve));
    terminal.pipe(stdout, { end: false });
    const fit = () => { if (stdout.columns) terminal.resize(stdout.columns, stdout.rows); };
    fit();
    stdout.on('resize', fit);
    terminal.on('close', () => stdout.off('resize', fit));
    if (interactive) {
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.pipe(terminal);
      terminal.on('close', () => {
        stdin.unpipe(terminal);
        if (stdin.isTTY) stdin.setRawMode(false);
        stdin.pause();
      });
    }
  };
  const result = await k3.containerCore.execContainer(id, command, { ...options, tty: true, onTerminal });
  await closed;
  return result;
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function collect(value, list) {
  return [...list, value];
}

function parseBool(value) {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new CommanderError(OWN.usage.code, 'k3.invalidArgument', `not true or false: ${value}`);
}

function parseInteger(value) {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new CommanderError(OWN.usage.code, 'k3.invalidArgument', `not a whole number: ${value}`);
  return n;
}

// --root and --json work before the verb and after it.
function withCommonOptions(cmd) {
  return cmd
    .option('--root <dir>', 'the store directory (default $K3_ROOT, else $XDG_DATA_HOME/k3-core, ~/.local/share/k3-core)')
    .option('--json', 'print the result as JSON');
}

function withRegistryOptions(cmd) {
  return cmd
    .option('--creds <user:password>', 'registry credentials (otherwise docker/podman auth files are used)')
    .option('--registry-token <token>', 'a registry bearer token')
    .option('--tls-verify <bool>', 'verify the registry\'s TLS certificate (default true)', parseBool)
    .option('--timeout <ms>', 'give up after this many milliseconds', parseInteger);
}

function withPlatformOptions(cmd) {
  return cmd
    .option('--os <os>', 'platform to pick from a multi-platform image (default the host\'s)')
    .option('--arch <architecture>', 'architecture to pick (default the host\'s)')
    .option('--variant <variant>', 'architecture variant to pick');
}

function registryOptions(opts) {
  const out = {};
  if (opts.creds) {
    const colon = opts.creds.indexOf(':');
    if (colon < 0) throw new CommanderError(OWN.usage.code, 'k3.invalidArgument', '--creds must be user:password');
    out.credentials = { username: opts.creds.slice(0, colon), password: opts.creds.slice(colon + 1) };
  }
  if (opts.registryToken) out.credentials = { registryToken: opts.registryToken };
  if (opts.tlsVerify !== undefined) out.tlsVerify = opts.tlsVerify;
  if (opts.timeout !== undefined) out.timeout = opts.timeout;
  if (opts.os) out.os = opts.os;
  if (opts.arch) out.architecture = opts.arch;
  if (opts.variant) out.variant = opts.variant;
  return out;
}

function table(rows, headers) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function humanSize(bytes) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) { n /= 1000; u++; }
  return `${u ? n.toFixed(n < 10 ? 2 : 1) : n}${units[u]}`;
}

function since(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  const steps = [[86400 * 365, 'year'], [86400 * 30, 'month'], [86400 * 7, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, unit] of steps) {
    const n = Math.floor(s / size);
    if (n >= 1) return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
  }
  return `${s} second${s === 1 ? '' : 's'} ago`;
}

// A store name as docker shows it: docker.io/library/ dropped.
function shortName(ref) {
  return ref.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

function splitRepoTag(ref) {
  const at = ref.indexOf('@');
  if (at >= 0) return [shortName(ref.slice(0, at)), '<none>'];
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return [shortName(ref.slice(0, colon)), ref.slice(colon + 1)];
  return [shortName(ref), '<none>'];
}

function buildProgram(io) {
  const program = new Command('k3');
  program
    .description('Container images and containers with no daemon: docker-like verbs over k3-core')
    .version(require('../../package.json').version)
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  withCommonOptions(program);

  const k3For = (opts) => new K3Core(opts.root ? { root: opts.root } : {});
  const print = (opts, result, text) => {
    if (opts.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (text !== undefined && text !== '') io.stdout.write(`${text}\n`);
  };

  // Each verb: its options merged with the ones given before the verb.
  const verb = (name, description, action) => {
    const cmd = withCommonOptions(program.command(name).description(description));
    cmd.action(async (...args) => {
      const self = args[args.length - 1];
      const opts = { ...program.opts(), ...self.opts() };
      await action(opts, k3For(opts), ...args.slice(0, -2));
    });
    return cmd;
  };

  // Runs fn(onProgress) with a progress display, stopped however it ends.
  const withProgress = async (title, fn) => {
    const progress = new Progress(title, io.stderr);
    try {
      return await fn((event) => progress.update(event));
    } finally {
      progress.stop();
    }
  };

  withPlatformOptions(withRegistryOptions(verb('inspect', 'show an image\'s metadata (registry, OCI layout or archive, or the store with k3:NAME), or a container\'s', async (opts, k3, ref) => {
    if (opts.type === 'container') {
      print({ json: true }, await k3.containerCore.inspectContainer(ref));
      return;
    }
    const { transport, name, tag } = parseImageRef(ref);
    const postData = { imageName: name, containerImageTransport: transport, ...registryOptions(opts) };
    if (tag) postData.imageTag = tag;
    if (opts.listTags) postData.listTags = true;
    print({ json: true }, await k3.imageCore.inspectAnImage(name, postData));
  })))
    .argument('<ref>', 'NAME[:TAG], docker://NAME, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF], k3:NAME, or a container with --type container')
    .addOption(new Option('--type <type>', 'what ref names').choices(['image', 'container']).default('image'))
    .option('--list-tags', 'fill RepoTags from the registry\'s tag list');

  withPlatformOptions(withRegistryOptions(verb('pull', 'pull an image into the store', async (opts, k3, ref) => {
    const { transport, name, tag } = parseImageRef(ref);
    const result = await withProgress(`pull ${ref}`, (onProgress) =>
      k3.imageCore.pullAnImage(name, tag || undefined, { containerImageTransport: transport, ...registryOptions(opts), onProgress }));
    print(opts, result, `${result.RepoTags.join(', ') || result.Id}: ${result.LayersPulled} layer(s) pulled, ${result.LayersReused} reused\nDigest: ${result.Digest}\nId: ${result.Id}`);
  })))
    .argument('<ref>', 'NAME[:TAG] (a registry), oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF]');

  verb('images', 'list the store\'s images', async (opts, k3) => {
    const images = await k3.imageCore.listImages();
    const rows = [];
    for (const image of images) {
      const names = image.RepoTags.length ? image.RepoTags : ['<none>:<none>'];
      for (const ref of names) {
        const [repo, tag] = ref === '<none>:<none>' ? ['<none>', '<none>'] : splitRepoTag(ref);
        rows.push([repo, tag, shortDigest(image.Id), since(image.Created), humanSize(image.Size)]);
      }
    }
    print(opts, images, table(rows, ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']));
  });

  verb('rmi', 'remove images from the store', async (opts, k3, refs) => {
    const results = [];
    for (const ref of refs) results.push(await k3.imageCore.removeImage(ref, { force: Boolean(opts.force) }));
    print(opts, results, results.flatMap((r) => [...r.Untagged.map((u) => `Untagged: ${u}`), ...r.Deleted.map((d) => `Deleted: ${d}`)]).join('\n'));
  }).argument('<image...>').option('-f, --force', 'untag an image containers use');

  verb('tag', 'give a store image another name', async (opts, k3, image, newName) => {
    const result = await k3.imageCore.tagImage(image, newName);
    print(opts, result, result.Tagged);
  }).argument('<image>').argument('<new-name>');

  withRegistryOptions(verb('push', 'send a store image to a registry', async (opts, k3, image, destination) => {
    const result = await withProgress(`push ${image}`, (onProgress) =>
      k3.imageCore.pushAnImage(image, destination || undefined, { ...registryOptions(opts), onProgress }));
    print(opts, result, `${result.Destination}: digest: ${result.Digest}`);
  })).argument('<image>').argument('[destination]', 'where to push (default the image\'s own name)');

  withPlatformOptions(withRegistryOptions(verb('save', 'write images as one docker save (or OCI) archive', async (opts, k3, images) => {
    if (!opts.output) throw new CommanderError(OWN.usage.code, 'k3.missingOutput', 'error: k3 save needs -o FILE');
    const options = { ...registryOptions(opts), format: opts.format, source: opts.source };
    if (opts.dockerVersion) options.dockerVersion = opts.dockerVersion;
    if (opts.durable) options.durable = true;
    const result = await withProgress(`save ${opts.output}`, (onProgress) =>
      k3.imageCore.saveImage(images, opts.output, { ...options, onProgress }));
    print(opts, result, `Saved ${result.Images.map((i) => i.RepoTags.join(', ') || i.Id).join('; ')} to ${result.Path} (${result.Format})`);
  })))
    .argument('<image...>')
    .requiredOption('-o, --output <file>', 'the archive to write (.tar, .tar.gz, .tar.zst)')
    .addOption(new Option('--format <format>', 'archive format').choices(['docker-archive', 'oci-archive']).default('docker-archive'))
    .addOption(new Option('--source <source>', 'save from the store, or straight from a registry').choices(['store', 'registry']).default('store'))
    .option('--docker-version <version>', 'which docker save to match byte for byte (20.10, 23, 24, 25)')
    .option('--durable', 'sync the archive to disk before naming it');

  verb('load', 'load the images of a docker save or OCI archive into the store', async (opts, k3) => {
    const result = await withProgress(`load ${opts.input}`, (onProgress) => k3.imageCore.loadImage(opts.input, { onProgress }));
    print(opts, result, result.Loaded.map((i) => `Loaded image: ${i.RepoTags.join(', ') || i.Id}`).join('\n'));
  }).requiredOption('-i, --input <file>', 'the archive to read (plain, .gz or .zst)');

  verb('create', 'create a container from a store image', async (opts, k3, image, command) => {
    const options = {};
    if (opts.name) options.name = opts.name;
    if (command.length) options.cmd = command;
    if (opts.entrypoint !== undefined) options.entrypoint = opts.entrypoint ? [opts.entrypoint] : [];
    if (opts.env.length) options.env = opts.env;
    if (opts.workdir) options.workingDir = opts.workdir;
    if (opts.user) options.user = opts.user;
    if (opts.hostname) options.hostname = opts.hostname;
    if (opts.network) options.network = opts.network;
    if (opts.label.length) options.labels = Object.fromEntries(opts.label.map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')]));
    if (opts.volume.length) {
      options.mounts = opts.volume.map((v) => {
        const [source, destination, mode] = v.split(':');
        return { source, destination, readOnly: mode === 'ro' };
      });
    }
    if (opts.capAdd.length) options.capAdd = opts.capAdd;
    if (opts.capDrop.length) options.capDrop = opts.capDrop;
    if (opts.privileged) options.privileged = true;
    if (opts.securityOpt.length) options.securityOpt = opts.securityOpt;
    const result = await k3.containerCore.createContainer(image, options);
    print(opts, result, result.Id);
  })
    .passThroughOptions()
    .argument('<image>')
    .argument('[command...]', 'the command to run instead of the image\'s CMD')
    .option('--name <name>', 'the container\'s name')
    .option('-e, --env <NAME=value>', 'set an environment variable (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user>', 'user[:group] to run as')
    .option('--entrypoint <path>', 'override the image\'s entrypoint')
    .option('--hostname <name>', 'host name')
    .addOption(new Option('--network <mode>', 'network').choices(['none', 'host']))
    .option('-l, --label <key=value>', 'a label (repeatable)', collect, [])
    .option('-v, --volume <src:dst[:ro]>', 'a bind mount (repeatable)', collect, [])
    .option('--cap-add <cap>', 'add a capability (repeatable)', collect, [])
    .option('--cap-drop <cap>', 'drop a capability (repeatable)', collect, [])
    .option('--privileged', 'every capability, no seccomp, no masked paths')
    .option('--security-opt <opt>', 'docker\'s --security-opt (repeatable)', collect, []);

  verb('ps', 'list containers (running ones; all with -a)', async (opts, k3) => {
    const containers = await k3.containerCore.listContainers(opts.all ? {} : { state: 'running' });
    const status = (c) => (c.State === 'exited' ? `Exited (${c.ExitCode}) ${since(c.FinishedAt)}` : c.State === 'running' ? `Up since ${c.StartedAt}` : c.State);
    const rows = containers.map((c) => [c.Id.slice(0, 12), shortName(c.Image), JSON.stringify(c.Command.join(' ')), since(c.Created), status(c), c.Name]);
    print(opts, containers, table(rows, ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES']));
  }).option('-a, --all', 'show every container, not only running ones');

  verb('start', 'start containers', async (opts, k3, ids) => {
    const results = [];
    for (const id of ids) results.push(await k3.containerCore.startContainer(id));
    print(opts, results, ids.join('\n'));
  }).argument('<container...>');

  verb('stop', 'stop containers: SIGTERM, then SIGKILL after the timeout', async (opts, k3, ids) => {
    const results = [];
    for (const id of ids) results.push(await k3.containerCore.stopContainer(id, opts.time === undefined ? {} : { timeout: opts.time }));
    print(opts, results, ids.join('\n'));
  }).argument('<container...>').option('-t, --time <seconds>', 'seconds to wait before SIGKILL (default 10)', parseInteger);

  verb('rm', 'remove containers', async (opts, k3, ids) => {
    const results = [];
    for (const id of ids) results.push(await k3.containerCore.removeContainer(id, { force: Boolean(opts.force) }));
    print(opts, results, ids.join('\n'));
  }).argument('<container...>').option('-f, --force', 'kill a running container first');

  verb('logs', 'print what a container wrote', async (opts, k3, id) => {
    const options = {};
    if (opts.tail !== undefined) options.tail = opts.tail;
    if (opts.since) options.since = /^\d+$/.test(opts.since) ? Number(opts.since) : opts.since;
    const write = (line) => {
      if (opts.json) io.stdout.write(`${JSON.stringify(line)}\n`);
      else (line.stream === 'stderr' ? io.stderr : io.stdout).write(line.log.endsWith('\n') ? line.log : `${line.log}\n`);
    };
    if (opts.follow) {
      for await (const line of k3.containerCore.containerLogs(id, { ...options, follow: true })) write(line);
      return;
    }
    const lines = await k3.containerCore.containerLogs(id, options);
    if (opts.json) print(opts, lines);
    else lines.forEach(write);
  })
    .argument('<container>')
    .option('-f, --follow', 'keep printing new lines until the container exits')
    .option('-n, --tail <lines>', 'only the last lines', parseInteger)
    .option('--since <time>', 'only lines since an ISO 8601 time or epoch seconds');

  verb('exec', 'run a command in a running container; exits with its exit code', async (opts, k3, id, command) => {
    if (command.length === 0) throw new CommanderError(OWN.usage.code, 'k3.invalidArgument', 'error: k3 exec needs a command: k3 exec CONTAINER COMMAND...');
    const options = { env: opts.env };
    if (opts.user) options.user = opts.user;
    if (opts.workdir) options.workingDir = opts.workdir;
    if (opts.interactive && !opts.tty) options.stdin = await readAll(io.stdin);
    // Ctrl-C or a TERM ends the command too, not only k3.
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    try {
      const result = opts.tty
        ? await execOnTerminal(k3, id, command, { ...options, signal: abort.signal }, opts.interactive, io)
        : await k3.containerCore.execContainer(id, command, { ...options, signal: abort.signal });
      if (opts.json) print(opts, result);
      else {
        io.stdout.write(result.stdout);
        io.stderr.write(result.stderr);
      }
      throw new CommandExit(result.ExitCode);
    } catch (err) {
      // As docker exec: 127 for a command not found, 126 for one that cannot run.
      const dockerCode = { CommandNotFound: 127, CommandNotExecutable: 126 }[err && err.name];
      if (!dockerCode) throw err;
      io.stderr.write(`${err.createFullMessage()}\n`);
      throw new CommandExit(dockerCode);
    } finally {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    }
  })
    .argument('<container>')
    .argument('[command...]')
    .passThroughOptions()
    .option('-e, --env <NAME=value>', 'set an environment variable (repeatable)', collect, [])
    .option('-u, --user <user>', 'name, uid, name:group or uid:gid (default the container\'s user)')
    .option('-w, --workdir <dir>', 'the working directory in the container')
    .option('-i, --interactive', 'feed this command\'s stdin to the command (read to its end first, unless -t)')
    .option('-t, --tty', 'run the command on a terminal: k3\'s stdout shows it, and with -i what is typed goes to it');

  verb('cp', 'copy a host file or directory into a container', async (opts, k3, src, dest) => {
    const colon = dest.indexOf(':');
    if (src.includes(':') && !src.startsWith('/') && !src.startsWith('.')) {
      throw new Unsupported('k3 cp copies into a container only (HOST_PATH CONTAINER:PATH); copying out of one is not supported yet');
    }
    if (colon <= 0) throw new CommanderError(OWN.usage.code, 'k3.invalidArgument', 'error: the destination must be CONTAINER:PATH');
    const result = await k3.containerCore.copyToContainer(dest.slice(0, colon), src, dest.slice(colon + 1));
    print(opts, result, `${src} -> ${dest.slice(0, colon)}:${result.Path}`);
  }).argument('<host-path>').argument('<container:path>');

  verb('commit', 'make a container\'s changes a new image', async (opts, k3, id, ref) => {
    const options = { changes: opts.change };
    if (ref) {
      const { name, tag } = parseImageRef(ref);
      options.repository = name;
      if (tag) options.tag = tag;
    }
    if (opts.message) options.message = opts.message;
    if (opts.author) options.author = opts.author;
    if (opts.pause === false) options.pause = false;
    const result = await k3.containerCore.commitContainer(id, options);
    print(opts, result, result.Id);
  })
    .argument('<container>')
    .argument('[repository[:tag]]')
    .option('-m, --message <text>', 'commit message')
    .option('-a, --author <name>', 'author')
    .option('-c, --change <instruction>', 'a Dockerfile instruction: ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE (repeatable)', collect, [])
    .option('--no-pause', 'do not pause a running container while committing');

  verb('export', 'write a container\'s filesystem as one tar (.tar, .tar.gz, .tar.zst)', async (opts, k3, id, file) => {
    const target = opts.output || file;
    if (!target) throw new CommanderError(OWN.usage.code, 'k3.missingOutput', 'error: k3 export needs a file: k3 export CONTAINER FILE, or -o FILE');
    const message = await withProgress(`export ${id}`, (onProgress) =>
      k3.containerCore.exportContainer(id, target, { onProgress, durable: Boolean(opts.durable) }));
    print(opts, { Id: id, Path: target, Message: message }, message);
  })
    .argument('<container>')
    .argument('[file]')
    .option('-o, --output <file>', 'the tar to write')
    .option('--durable', 'sync the tar to disk before naming it');

  return program;
}

// Runs the command line argv (without node and the script) and resolves the
// exit code; io: { stdin, stdout, stderr } streams.
async function main(argv, io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }) {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      // commander has printed its own message; ours are printed here.
      if (err.code.startsWith('k3.')) io.stderr.write(`${err.message}\n`);
      return OWN.usage.code;
    }
    if (err instanceof CommandExit) return err.code;
    if (err instanceof Unsupported) {
      io.stderr.write(`${err.message}\n`);
      return OWN.unsupported.code;
    }
    if (err instanceof K3Core.K3Error) {
      io.stderr.write(`${err.createFullMessage()}\n`);
      return exitCodeOf(err);
    }
    io.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    return OWN.failure.code;
  }
}

module.exports = { main, buildProgram };
