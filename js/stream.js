'use strict';
// Hands a Node Readable to the engine, or a Node Writable for its output:
// either is served on a Unix socket of its own, which the engine connects
// to and reads or writes as it would a file. The socket's flow control
// paces the stream both ways (a slow Writable blocks the engine's writes),
// so memory stays flat whatever its size, and nothing is staged on disk.
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Readable, Writable } = require('node:stream');
const { finished } = require('node:stream/promises');
const errors = require('./errors');

function isNodeReadable(v) {
  return v instanceof Readable || (v !== null && typeof v === 'object' && typeof v.pipe === 'function' && typeof v.on === 'function');
}

function isWritable(v) {
  return v instanceof Writable || (v !== null && typeof v === 'object' && typeof v.write === 'function' &&
    typeof v.end === 'function' && typeof v.on === 'function');
}

function isWebStream(v) {
  return typeof ReadableStream !== 'undefined' && v instanceof ReadableStream;
}

function isReadable(v) {
  return isNodeReadable(v) || isWebStream(v);
}

// Runs fn(socketPath, signal) while the socket serves source to one reader.
// The socket ends only when the stream does: a stream that fails aborts the
// call through signal instead (a closed socket would read as a clean end,
// and a tar cut at an entry boundary as a smaller tree), and the call
// rejects with invalidClass, the stream's error as its cause. The stream
// is destroyed once fn settles: it belongs to the call.
async function serveStream(op, source, userSignal, invalidClass, fn) {
  const readable = isWebStream(source) ? Readable.fromWeb(source) : source;
  const failed = new AbortController();
  const signal = userSignal instanceof AbortSignal ? AbortSignal.any([userSignal, failed.signal]) : failed.signal;
  let streamError;
  readable.on('error', (err) => {
    streamError = err;
    failed.abort(err);
  });
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'k3-stream-'));
  const socketPath = path.join(dir, 'source.sock');
  const server = net.createServer((conn) => {
    server.close();
    conn.on('error', () => {}); // the engine stopped reading: its answer says why
    readable.pipe(conn);
  });
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, resolve);
    });
    return await fn(socketPath, signal);
  } catch (err) {
    if (streamError === undefined) throw err;
    const message = streamError && streamError.message ? streamError.message : String(streamError);
    throw errors.create(op, invalidClass, { source: '-', error: `the stream failed: ${message}` }, streamError);
  } finally {
    server.close();
    if (typeof readable.destroy === 'function') readable.destroy();
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

// How far the engine's output may run ahead of a busy sink before the
// socket is paused, in bytes.
const SINK_BATCH = 1 << 20;

// Pipes conn into sink, as conn.pipe(sink) would but pausing only once
// SINK_BATCH bytes wait in the sink (or its own highWaterMark, if larger),
// resuming once it has drained. pipe() pauses whenever the sink is above its
// highWaterMark (16 KiB for an fs.WriteStream), so each 64 KiB read waited
// for its own write: one thread-pool write per chunk, and the socket idle
// meanwhile. Here the chunks that arrive during a write go out together in
// the next one (one writev of up to 1 MiB, for a sink with _writev), and
// memory stays bounded by SINK_BATCH. A sink that does not report its
// writableLength gets pipe()'s pacing.
function pipeBatched(conn, sink) {
  let paused = false;
  conn.on('data', (chunk) => {
    if (sink.write(chunk) || paused || sink.writableLength < SINK_BATCH) return;
    paused = true;
    conn.pause();
    sink.once('drain', () => {
      paused = false;
      conn.resume();
    });
  });
}

// Runs fn(socketPath, signal) while the socket takes one connection from
// the engine and pipes what it writes into sink, pausing while sink is
// full. The call resolves once sink has finished; the engine closes the
// socket after a failure too, so the call's answer, not the socket's end,
// says whether the output is whole. On any failure sink is destroyed with
// the call's K3Error; a sink that fails aborts the call, which rejects with
// failClass, the sink's error as its cause.
async function serveSink(op, sink, userSignal, failClass, details, fn) {
  const failed = new AbortController();
  const signal = userSignal instanceof AbortSignal ? AbortSignal.any([userSignal, failed.signal]) : failed.signal;
  let sinkError;
  let done = false;
  const fail = (err) => {
    if (done || sinkError !== undefined) return;
    sinkError = err;
    failed.abort(err);
  };
  sink.on('error', fail);
  sink.on('close', () => fail(new Error('the Writable was closed before the output ended')));
  let conn;
  let engineDone;
  const engineEnded = new Promise((resolve) => { engineDone = resolve; });
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'k3-stream-'));
  const socketPath = path.join(dir, 'sink.sock');
  const server = net.createServer((c) => {
    server.close();
    conn = c;
    conn.on('error', () => {}); // the engine's answer says why
    conn.on('close', engineDone);
    pipeBatched(conn, sink);
  });
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, resolve);
    });
    const result = await fn(socketPath, signal);
    await engineEnded;
    if (sinkError === undefined) {
      done = true;
      sink.end();
      await finished(sink);
    }
    if (sinkError !== undefined) throw sinkError;
    return result;
  } catch (err) {
    let k3err = err;
    if (sinkError !== undefined) {
      const message = sinkError && sinkError.message ? sinkError.message : String(sinkError);
      k3err = errors.create(op, failClass, { ...details, error: `the stream failed: ${message}` }, sinkError);
    }
    done = true;
    if (conn) conn.destroy();
    sink.destroy(k3err);
    throw k3err;
  } finally {
    server.close();
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

module.exports = { serveStream, serveSink, isReadable, isWritable };
