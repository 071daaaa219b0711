'use strict';
// imageCore: reading images from registries, layouts and archives.
const { call } = require('./native');
const { logged } = require('./logger');

class ImageCore {
  constructor(log) {
    this._log = log;
  }

  // Reads an image's metadata without downloading its layers; the result has
  // the fields of `skopeo inspect` (see SPEC §2).
  inspectAnImage(imageName, postData) {
    const signal = postData && typeof postData === 'object' ? postData.signal : undefined;
    const details = { imageName: typeof imageName === 'string' ? imageName : '' };
    return logged(this._log, 'inspectAnImage', { imageName: details.imageName }, () =>
      call('inspectAnImage', [imageName, postData], { signal: asSignal(signal), details }));
  }
}

// A non-AbortSignal `signal` is passed on for the engine to reject.
function asSignal(signal) {
  return typeof AbortSignal !== 'undefined' && signal instanceof AbortSignal ? signal : undefined;
}

module.exports = { ImageCore };
