'use strict';
// k3.events(): the store's events as an async iterable, as `docker events`
// streams them. The engine follows the store's journal in one long call and
// hands each event over as that call's progress; the iterable ends when the
// call does: once `until` has passed, or when the caller aborts or stops
// iterating.
const { run } = require('./operation');

function isAbortSignal(v) {
  return typeof AbortSignal !== 'undefined' && v instanceof AbortSignal;
}

// The call starts at once, not at the first next(), so no event between
// this call and the caller's first await is missed; without since, the
// events begin now.
function events(ctx, options) {
  const given = options && typeof options === 'object' ? options : {};
  const stop = new AbortController();
  const signal = isAbortSignal(given.signal) ? AbortSignal.any([given.signal, stop.signal]) : stop.signal;
  const now = Date.now() / 1000;
  let args = options; // what is not an object goes to the engine to refuse
  if (options === undefined || options === null) args = { since: now };
  else if (options === given && !Array.isArray(options) && options.since === undefined) args = { ...options, since: now };
  const state = { queue: [], wake: () => {}, finished: false, failure: undefined };
  run(ctx, 'events', [args], { signal, onProgress: (ev) => {
    state.queue.push(ev);
    state.wake();
  } })
    .catch((err) => {
      if (!signal.aborted) state.failure = err;
    })
    .finally(() => {
      state.finished = true;
      state.wake();
    });
  const iterator = drain(state, stop);
  const finish = iterator.return.bind(iterator);
  // A caller may end it before its first next(), when the generator's own
  // finally would not run.
  iterator.return = (value) => {
    stop.abort();
    return finish(value);
  };
  return iterator;
}

async function* drain(state, stop) {
  try {
    for (;;) {
      if (state.queue.length > 0) {
        yield state.queue.shift();
      } else if (state.finished) {
        break;
      } else {
        await new Promise((resolve) => {
          state.wake = resolve;
        });
      }
    }
    if (state.failure) throw state.failure;
  } finally {
    stop.abort();
  }
}

module.exports = { events };
