'use strict';
// containerStats: samples of a container's cgroups, once or as a stream,
// with docker's precpu_stats and the figures `docker stats` shows.
const { setTimeout: delay } = require('node:timers/promises');
const errors = require('./errors');

const op = 'containerStats';

function optionsProblem(options) {
  if (options === undefined) return '';
  if (options === null || typeof options !== 'object') return 'options must be an object';
  if (options.stream !== undefined && typeof options.stream !== 'boolean') return 'options.stream must be a boolean';
  const { interval } = options;
  if (interval !== undefined && !(Number.isInteger(interval) && interval > 0)) {
    return 'options.interval must be a positive integer (milliseconds)';
  }
  return '';
}

// Docker's CLI leaves inactive page cache out of the usage it shows.
function memUsage(memory) {
  const s = memory.stats || {};
  const cache = s.total_inactive_file !== undefined ? s.total_inactive_file : s.inactive_file;
  return cache !== undefined && cache < memory.usage ? memory.usage - cache : memory.usage;
}

// The sample with precpu_stats from the one before (zero for the first)
// and {CPUPerc, MemUsage, MemLimit, MemPerc, PIDs}, percentages as numbers.
function withFigures(sample, previous) {
  const precpu = previous ? previous.cpu_stats : { cpu_usage: { total_usage: 0 }, system_cpu_usage: 0, online_cpus: 0 };
  const cpuDelta = sample.cpu_stats.cpu_usage.total_usage - precpu.cpu_usage.total_usage;
  const systemDelta = sample.cpu_stats.system_cpu_usage - precpu.system_cpu_usage;
  const CPUPerc = previous && cpuDelta > 0 && systemDelta > 0
    ? (cpuDelta / systemDelta) * sample.cpu_stats.online_cpus * 100 : 0;
  const MemUsage = memUsage(sample.memory_stats);
  const MemLimit = sample.memory_stats.limit;
  return {
    ...sample,
    precpu_stats: precpu,
    CPUPerc,
    MemUsage,
    MemLimit,
    MemPerc: MemLimit > 0 ? (MemUsage / MemLimit) * 100 : 0,
    PIDs: sample.pids_stats.current,
  };
}

// Waits ms, or rejects with the operation's AbortError.
async function wait(ms, signal, details) {
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    throw errors.abortError(op, details, signal && signal.reason);
  }
}

// The container has gone: a stream ends there.
function ended(err) {
  return err instanceof errors.classes.ContainerNotRunning || err instanceof errors.classes.ContainerNotFound;
}

// read(signal) takes one sample. Once: two samples interval apart, so that
// CPUPerc covers that interval, as `docker stats --no-stream`.
async function once(read, interval, signal, details) {
  const first = await read();
  await wait(interval, signal, details);
  return withFigures(await read(), first);
}

// A sample now, then one every interval until the container stops, the
// signal aborts (the iteration then just ends) or the caller breaks off.
async function* stream(read, interval, signal, details) {
  let previous = await read();
  yield withFigures(previous, undefined);
  for (;;) {
    if (signal && signal.aborted) return;
    let sample;
    try {
      await wait(interval, signal, details);
      sample = await read();
    } catch (err) {
      if (ended(err) || err instanceof errors.classes.AbortError) return;
      throw err;
    }
    yield withFigures(sample, previous);
    previous = sample;
  }
}

// containerStats(read, containerId, options): a Promise of one sample, or
// with {stream: true} an async iterable of them.
function containerStats(read, containerId, options) {
  const details = { containerId: typeof containerId === 'string' ? containerId : '' };
  const reason = optionsProblem(options);
  const opts = options || {};
  const interval = opts.interval === undefined ? 1000 : opts.interval;
  const signal = typeof AbortSignal !== 'undefined' && opts.signal instanceof AbortSignal ? opts.signal : undefined;
  if (reason) {
    const err = errors.create(op, 'InvalidContainerStatsParameters', { ...details, error: reason });
    if (opts.stream === true) return (async function* invalid() { throw err; })();
    return Promise.reject(err);
  }
  const readOne = () => read(signal);
  return opts.stream ? stream(readOne, interval, signal, details) : once(readOne, interval, signal, details);
}

module.exports = { containerStats };
