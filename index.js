'use strict';
// k3-core: container images and containers for Node.js, with no daemon.
const errors = require('./js/errors');
const { ImageCore } = require('./js/imageCore');
const { wrap } = require('./js/logger');

class K3Core {
  /**
   * @param {object} [options]
   * @param {object} [options.logger] console-like logger (debug/info/warn/error); silent by default
   */
  constructor(options = {}) {
    const log = wrap(options && options.logger);
    this.imageCore = new ImageCore(log);
  }
}

K3Core.errors = errors.classes;
K3Core.K3Core = K3Core;
K3Core.K3Error = errors.K3Error;

module.exports = K3Core;
