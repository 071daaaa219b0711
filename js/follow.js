'use strict';
// A followed container log: a Readable in object mode (so also an async
// iterable) of {stream, time, log}, fed by the engine's containerLogs with
// follow. The engine sends the entries in batches and waits for an ack after
// each one; the ack goes back only once the stream is below its high-water
// mark, so a slow reader holds at most one batch beyond it, and the log
// file itself is the buffer.
const { Readable } = require('node:stream');
const { run } = require('./operation');
const { call } = require('./native');

const HIGH_WATER_MARK = 256; // entries

function followLogs(ctx, containerId, options, details) {
  const stop = new AbortController();
  const user = options && options.signal;
  const signal = user ? AbortSignal.any([user, stop.signal]) : stop.signal;
  let waiting = null; // the token of a batch not yet acked, for want of room
  const ack = (token) => call('containerLogsAck', [token]).catch(() => {}); // the follow may have ended meanwhile
  const stream = new Readable({
    objectMode: true,
    highWaterMark: HIGH_WATER_MARK,
    read() {
      if (waiting) {
        ack(waiting);
        waiting = null;
      }
    },
    destroy(err, callback) {
      stop.abort();
      callback(err);
    },
  });
  const onProgress = ({ token, entries }) => {
    let room = true;
    for (const entry of entries) room = stream.push(entry);
    if (room) ack(token);
    else waiting = token;
  };
  run(ctx, 'containerLogs', [containerId, { ...options, follow: true }], { signal, onProgress }, details).then(
    () => stream.push(null),
    (err) => stream.destroy(err), // a no-op once the reader has destroyed it
  );
  return stream;
}

module.exports = { followLogs };
