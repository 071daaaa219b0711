'use strict';
// Hands a Node Readable to the engine: it is served on a Unix socket of its
// own, which the engine connects to and reads as it would a file. The
// socket's flow control paces the stream, so memory stays flat whatever
// its size, and nothing is staged on disk.
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');
const errors = require('./errors');

function isNodeReadable(v) {
  return v instanceof Readable || (v !== null && typeof v === 'object' && typeof v.pipe === 'function' && typeof v.on === 'function');
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

module.exports = { serveStream, isReadable };
