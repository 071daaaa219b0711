'use strict';
// containerCore: containers in the local store.
const net = require('node:net');
const { run } = require('./operation');
const { followLogs } = require('./follow');
const { serveSink, isWritable } = require('./stream');
const errors = require('./errors');
const stats = require('./stats');

const str = (v) => (typeof v === 'string' ? v : '');

function withStdinEncoded(options) {
  if (!options || typeof options !== 'object') return options;
  const { stdin, ...rest } = options;
  if (typeof stdin === 'string') return { ...rest, stdinBase64: Buffer.from(stdin).toString('base64') };
  if (stdin instanceof Uint8Array) return { ...rest, stdinBase64: Buffer.from(stdin.buffer, stdin.byteOffset, stdin.byteLength).toString('base64') };
  return options; // absent, or of a kind the engine rejects with a clear reason
}

// The exec's terminal, from the descriptors the engine hands over: what is
// typed and shown on one socket, resizes as JSON lines on the other.
function openTerminal({ data, control }) {
  const terminal = new net.Socket({ fd: data, readable: true, writable: true });
  const resizer = new net.Socket({ fd: control, readable: true, writable: true });
  resizer.on('error', () => {}).resume();
  terminal.on('close', () => resizer.destroy());
  terminal.resize = (cols, rows) => {
    if (!resizer.destroyed) resizer.write(`${JSON.stringify({ cols, rows })}\n`);
  };
  return terminal;
}

class ContainerCore {
  constructor(ctx) {
    Object.defineProperty(this, '_ctx', { value: ctx });
  }

  // createContainer(image, {name, cmd, entrypoint, env, workingDir, user, labels, hostname,
  //   network, mounts, capAdd, capDrop, privileged, securityOpt})
  createContainer(image, options) {
    return run(this._ctx, 'createContainer', [image, options], options, { image: str(image) });
  }

  // listContainers({state, name, image})
  listContainers(filters) {
    return run(this._ctx, 'listContainers', [filters], undefined);
  }

  inspectContainer(containerId) {
    return run(this._ctx, 'inspectContainer', [containerId], undefined, { containerId: str(containerId) });
  }

  // removeContainer(id, {force})
  removeContainer(containerId, options) {
    return run(this._ctx, 'removeContainer', [containerId, options], options, { containerId: str(containerId) });
  }

  // Copies a host file or directory into the container, as `docker cp` does:
  // copyToContainer(id, srcPath, destPath, {signal}).
  copyToContainer(containerId, srcPath, destPath, options) {
    return run(this._ctx, 'copyToContainer', [containerId, srcPath, destPath], options, { containerId: str(containerId) });
  }

  // Deletes a path from the container's filesystem (recorded as a whiteout).
  removeFromContainer(containerId, pathInContainer) {
    return run(this._ctx, 'removeFromContainer', [containerId, pathInContainer], undefined, { containerId: str(containerId) });
  }

  // Starts a container with the host's OCI runtime (runc or crun).
  // startContainer(id, {signal}): an aborted start settles once no process
  // or mount of it is left.
  startContainer(containerId, options) {
    return run(this._ctx, 'startContainer', [containerId], options, { containerId: str(containerId) });
  }

  // stopContainer(id, {timeout}): SIGTERM, then SIGKILL after timeout seconds (default 10).
  stopContainer(containerId, options) {
    return run(this._ctx, 'stopContainer', [containerId, options], options, { containerId: str(containerId) });
  }

  // killContainer(id, signal = 'SIGKILL')
  killContainer(containerId, signal) {
    return run(this._ctx, 'killContainer', [containerId, signal], undefined, { containerId: str(containerId) });
  }

  // Resolves with {Id, ExitCode, FinishedAt} once the container has exited.
  waitContainer(containerId, options) {
    return run(this._ctx, 'waitContainer', [containerId], options, { containerId: str(containerId) });
  }

  // Freezes every process of a running container (runc pause).
  pauseContainer(containerId) {
    return run(this._ctx, 'pauseContainer', [containerId], undefined, { containerId: str(containerId) });
  }

  unpauseContainer(containerId) {
    return run(this._ctx, 'unpauseContainer', [containerId], undefined, { containerId: str(containerId) });
  }

  // restartContainer(id, {timeout})
  restartContainer(containerId, options) {
    return run(this._ctx, 'restartContainer', [containerId, options], options, { containerId: str(containerId) });
  }

  // containerLogs(id, {tail, since, stdout, stderr}) -> [{stream, time, log}];
  // with follow: true, a Readable of those entries as they are written.
  containerLogs(containerId, options) {
    if (options && typeof options === 'object' && options.follow === true) return followLogs(this._ctx, containerId, options, { containerId: str(containerId) });
    return run(this._ctx, 'containerLogs', [containerId, options], options, { containerId: str(containerId) });
  }

  // Runs a command in a running container, as `docker exec`:
  // execContainer(id, cmd, {env, user, workingDir, stdin, signal}) ->
  // {ExitCode, stdout, stderr}. stdin, a string or a Buffer, travels as base64.
  // With {tty: true, onTerminal(terminal)} it runs on a pseudo-terminal,
  // given to onTerminal as a Duplex stream with resize(cols, rows).
  execContainer(containerId, cmd, options) {
    const details = { containerId: str(containerId) };
    const onTerminal = options && options.tty === true ? options.onTerminal : undefined;
    if (options && options.tty === true && typeof onTerminal !== 'function') {
      return Promise.reject(errors.create('execContainer', 'InvalidExecContainerParameters',
        { ...details, error: 'options.onTerminal(terminal) is required with options.tty' }));
    }
    const callOptions = onTerminal ? { ...options, onProgress: (event) => onTerminal(openTerminal(event.terminal)) } : options;
    return run(this._ctx, 'execContainer', [containerId, cmd, withStdinEncoded(options)], callOptions, details);
  }

  // CPU, memory and tasks of a running container, from its cgroups, shaped
  // as docker's stats: containerStats(id, {stream, interval, signal}) ->
  // Promise of one sample, or with {stream: true} an async iterable of
  // samples every interval ms (default 1000) until the container stops.
  containerStats(containerId, options) {
    const details = { containerId: str(containerId) };
    const read = (signal) => run(this._ctx, 'containerStats', [containerId], { signal }, details);
    return stats.containerStats(read, containerId, options);
  }

  // Makes the container's changes a new image layer, as `docker commit`:
  // commitContainer(id, {repository, tag, message, author, changes, pause}).
  commitContainer(containerId, options) {
    return run(this._ctx, 'commitContainer', [containerId, options], options, { containerId: str(containerId) });
  }

  // Lists what the container changed against its image, as `docker diff`:
  // [{Path, Kind}], Kind 0 modified, 1 added, 2 deleted. Only reads.
  containerChanges(containerId) {
    return run(this._ctx, 'containerChanges', [containerId], undefined, { containerId: str(containerId) });
  }

  // Writes the container's whole filesystem to one tar (SPEC §3):
  // .tar plain, .tar.gz/.tgz gzip, .tar.zst zstd. options: {signal,
  // onProgress, durable} — durable also puts it on disk before naming it.
  // filePath may be a Writable instead, written into with backpressure;
  // options.compression ('gzip', 'zstd', 'none') then says how.
  exportContainer(containerId, filePath, options) {
    if (!isWritable(filePath)) {
      return run(this._ctx, 'exportContainer', [containerId, filePath, options], options,
        { containerId: str(containerId), filePath: str(filePath) });
    }
    const opts = options && typeof options === 'object' ? options : {};
    const details = { containerId: str(containerId), filePath: '-' };
    return serveSink('exportContainer', filePath, opts.signal, 'ExportContainerIOFailure', details, (socketPath, signal) =>
      run(this._ctx, 'exportContainer', [containerId, { stream: socketPath, compression: opts.compression }, options],
        { ...opts, signal }, details));
  }
}

module.exports = { ContainerCore };
