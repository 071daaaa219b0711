'use strict';
// Progress of a long operation (pull, push, load, save, export) on stderr:
// a bar per layer (or per phase, for operations without layers) on a
// terminal, drawn by cli-progress; one plain line per step otherwise, so a
// log file or CI output stays readable.
const cliProgress = require('cli-progress');

// Events come from the library's onProgress callbacks: PullProgress
// {phase, layer, index, count, current, total}, SaveProgress {phase,
// current, total}, PushProgress {phase, current, total}, ExportProgress
// {phase, current, total, entries}.
class Progress {
  constructor(title, stream = process.stderr) {
    this.title = title;
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
    this.steps = new Map(); // key -> { phase, bar }
    if (this.tty) {
      this.bars = new cliProgress.MultiBar({
        stream,
        format: '{label} {phase} |{bar}| {percentage}% {value}/{total} {unit}',
        barsize: 30,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        emptyOnZero: true,
        // Redraw on a timer rather than per event: events come often.
        fps: 10,
        autopadding: true,
      }, cliProgress.Presets.shades_classic);
    }
  }

  // The library's callback: progress.update bound as onProgress.
  update(event) {
    if (!event || typeof event !== 'object') return;
    const { phase, layer } = event;
    // The library sends at most about ten events a second, so a fast layer
    // may have none, or none at its end: a bar of the layers (one is done
    // once it exists or is being unpacked) starts at 'resolved', and 'done'
    // completes every bar.
    if (!layer && phase === 'resolved') {
      this.layersDone = new Set();
      if (this.tty) this.overall = this.bars.create(event.count, 0, { label: this.title, phase: 'layers', unit: 'layers' });
      else this.line(`${this.title}: ${event.count} layer${event.count === 1 ? '' : 's'}`);
      return;
    }
    if (!layer && phase === 'done') {
      this.finish();
      return;
    }
    if (layer && this.layersDone && (phase === 'exists' || phase === 'unpack')) {
      this.layersDone.add(layer);
      if (this.overall) this.overall.update(this.layersDone.size);
    }
    const key = layer || phase;
    const label = layer ? `${shortDigest(layer)} (${event.index + 1}/${event.count})` : this.title;
    const unit = event.entries !== undefined ? `bytes, ${event.entries} entries` : 'bytes';
    const current = Math.max(0, Number(event.current) || 0);
    const total = Math.max(current, Number(event.total) || 0);
    const step = this.steps.get(key);
    if (this.tty) {
      if (!step) {
        this.steps.set(key, { phase, bar: this.bars.create(total, current, { label, phase, unit }) });
      } else {
        step.phase = phase;
        step.bar.setTotal(total);
        step.bar.update(current, { phase, unit });
      }
      return;
    }
    // A line when a step starts, and one when it completes.
    const complete = total > 0 && current >= total;
    if (!step || step.phase !== phase || (complete && !step.complete)) {
      this.steps.set(key, { phase, complete });
      this.line(`${label}: ${phase}${total ? ` ${current}/${total} ${unit}` : ''}`);
    }
  }

  finish() {
    if (!this.tty) {
      this.line(`${this.title}: done`);
      return;
    }
    for (const step of this.steps.values()) step.bar.update(step.bar.getTotal(), { phase: 'done' });
    if (this.overall) this.overall.update(this.overall.getTotal());
  }

  line(text) {
    if (this.tty) this.bars.log(`${text}\n`);
    else this.stream.write(`${text}\n`);
  }

  // Leaves the bars drawn at their last values.
  stop() {
    if (this.tty) this.bars.stop();
  }
}

function shortDigest(d) {
  const hex = String(d).replace(/^sha256:/, '');
  return hex.slice(0, 12);
}

module.exports = { Progress, shortDigest };
