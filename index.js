'use strict';
// k3-core: container images and containers for Node.js, with no daemon.
const os = require('node:os');
const path = require('node:path');
const errors = require('./js/errors');
const { ImageCore } = require('./js/imageCore');
const { ContainerCore } = require('./js/containerCore');
const { wrap } = require('./js/logger');
const { events } = require('./js/events');

// The store's default place, as XDG has it: $XDG_DATA_HOME/k3-core or
// ~/.local/share/k3-core; K3_ROOT overrides.
function defaultRoot() {
  if (process.env.K3_ROOT) return process.env.K3_ROOT;
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'k3-core');
}

class K3Core {
  /**
   * @param {object} [options]
   * @param {string} [options.root] the store's directory (default $K3_ROOT or ~/.local/share/k3-core)
   * @param {object} [options.logger] console-like logger (debug/info/warn/error); silent by default
   * @param {string} [options.runtime] OCI runtime to run containers with (default runc, else crun, on PATH)
   */
  constructor(options = {}) {
    const opts = options && typeof options === 'object' ? options : {};
    const ctx = {
      log: wrap(opts.logger),
      root: path.resolve(typeof opts.root === 'string' && opts.root ? opts.root : defaultRoot()),
      runtime: typeof opts.runtime === 'string' ? opts.runtime : '',
    };
    Object.defineProperty(this, 'root', { value: ctx.root, enumerable: true });
    this.imageCore = new ImageCore(ctx);
    this.containerCore = new ContainerCore(ctx);
    Object.defineProperty(this, '_ctx', { value: ctx });
  }

  /**
   * The store's container and image events, as `docker events` streams
   * them, from every process that uses this root: an async iterable.
   * @param {object} [options] {filters: {type, event, container, image}, since, until, signal}
   */
  events(options) {
    return events(this._ctx, options);
  }
}

module.exports = K3Core;
// Each name is set as module.exports.<name> so that Node's ES module loader
// sees it and index.mjs re-exports it (test/esm.test.js checks that import
// and require give the same names).
module.exports.errors = errors.classes;
module.exports.K3Core = K3Core;
module.exports.K3Error = errors.K3Error;
