'use strict';
// imageCore: images in registries, layouts, archives and the local store.
const { run } = require('./operation');
const { serveStream, serveSink, isReadable, isWritable } = require('./stream');

const str = (v) => (typeof v === 'string' ? v : '');

class ImageCore {
  constructor(ctx) {
    Object.defineProperty(this, '_ctx', { value: ctx });
  }

  // Reads an image's metadata without downloading its layers; the result has
  // the fields of `skopeo inspect` (SPEC §2).
  inspectAnImage(imageName, postData) {
    return run(this._ctx, 'inspectAnImage', [imageName, postData], postData, { imageName: str(imageName) });
  }

  // Pulls an image into the local store: pullAnImage(name, tag?, options?).
  // options: containerImageTransport, credentials, tlsVerify, os,
  // architecture, variant, timeout, signal, onProgress(event).
  pullAnImage(imageName, tag, options) {
    const opts = tag && typeof tag === 'object' ? tag : options;
    return run(this._ctx, 'pullAnImage', [imageName, tag, options], opts, { imageName: str(imageName), tag: str(tag) });
  }

  // Copies an image into an OCI layout directory without unpacking it, as
  // `skopeo copy docker://IMAGE oci:DIR:TAG` does:
  // copyImage(name, tag, layoutDir, {destinationTag, credentials, tlsVerify, ...}).
  copyImage(imageName, tag, destination, options) {
    return run(this._ctx, 'copyImage', [imageName, tag, destination, options], options,
      { imageName: str(imageName), destination: str(destination) });
  }

  // Gives a store image another name, as `docker tag`.
  tagImage(image, newName) {
    return run(this._ctx, 'tagImage', [image, newName], undefined, { image: str(image) });
  }

  // Sends a store image to a registry, as `docker push`:
  // pushAnImage(image, destination?, {credentials, tlsVerify, timeout, signal, onProgress}).
  pushAnImage(image, destination, options) {
    const opts = destination && typeof destination === 'object' ? destination : options;
    const dest = typeof destination === 'string' ? destination : undefined;
    return run(this._ctx, 'pushAnImage', [image, dest, opts], opts, { image: str(image) });
  }

  // Loads every image of a docker save tarball or an OCI archive (plain,
  // .gz or .zst) into the store, as `docker load`. options: {signal, onProgress}.
  // filePath may be a Readable instead (an HTTP response, say), checked as
  // a file is.
  loadImage(filePath, options) {
    if (!isReadable(filePath)) {
      return run(this._ctx, 'loadImage', [filePath], options, { filePath: str(filePath) });
    }
    const signal = options && typeof options === 'object' ? options.signal : undefined;
    return serveStream('loadImage', filePath, signal, 'InvalidArchive', (socketPath, streamSignal) =>
      run(this._ctx, 'loadImage', [{ stream: socketPath }], { ...options, signal: streamSignal }, { filePath: '-' }));
  }

  // Writes images as one archive, atomically, as `docker save` does (byte for
  // byte) or as an OCI archive: saveImage(refs, filePath, {format,
  // dockerVersion, source, durable, credentials, tlsVerify, os, architecture,
  // variant, timeout, signal, onProgress}). source 'registry' saves straight
  // from the registry, with nothing stored.
  // filePath may be a Writable instead, written into with backpressure;
  // options.compression ('gzip', 'zstd', 'none') then says how.
  saveImage(images, filePath, options) {
    const names = Array.isArray(images) ? images : [str(images)];
    if (!isWritable(filePath)) {
      return run(this._ctx, 'saveImage', [images, filePath, options], options, { images: names, filePath: str(filePath) });
    }
    const opts = options && typeof options === 'object' ? options : {};
    const details = { images: names, filePath: '-' };
    return serveSink('saveImage', filePath, opts.signal, 'SaveImageIOFailure', details, (socketPath, signal) =>
      run(this._ctx, 'saveImage', [images, { stream: socketPath, compression: opts.compression }, options],
        { ...opts, signal }, details));
  }

  // Makes a one-layer image of a filesystem tar, as `docker import`:
  // importImage(source, {repository, tag, message, changes, platform,
  // signal, onProgress}). source is a tar file's path (plain, .gz, .zst,
  // .bz2, .xz) or a Readable, which is streamed to the engine.
  importImage(source, options) {
    if (!isReadable(source)) {
      return run(this._ctx, 'importImage', [source, options], options, { source: str(source) });
    }
    const signal = options && typeof options === 'object' ? options.signal : undefined;
    return serveStream('importImage', source, signal, 'InvalidImportArchive', (socketPath, streamSignal) =>
      run(this._ctx, 'importImage', [{ stream: socketPath }, options], { ...options, signal: streamSignal }, { source: '-' }));
  }

  listImages() {
    return run(this._ctx, 'listImages', [], undefined);
  }

  // removeImage(ref, {force}): an image a container uses needs force.
  removeImage(image, options) {
    return run(this._ctx, 'removeImage', [image, options], options, { image: str(image) });
  }
}

module.exports = { ImageCore };
