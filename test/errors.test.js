'use strict';
// The error classes: one per catalogue name, with the documented message,
// code, type and details, for both documented operations.
const { test } = require('node:test');
const assert = require('node:assert/strict');

const K3Core = require('..');
const errors = require('../js/errors');
const catalogue = require('../golib/errcat/catalogue.json');

const documented = {
  inspectAnImage: [
    ['InvalidInspectParameters', 422, 'VALIDATION_ERROR', 'Invalid inspection parameters.'],
    ['ImageNotFoundInRegistry', 404, 'NOT_FOUND', 'Image not found in registry.'],
    ['RegistryAuthenticationFailure', 401, 'NETWORK_ERROR', 'Failed to authenticate with registry.'],
    ['RegistryConnectionFailure', 500, 'NETWORK_ERROR', 'Failed to connect to registry.'],
    ['InspectImageFailure', 500, 'IMAGE_SERVICE_ERROR', 'Failed to inspect image.'],
    ['GenericFailure', 500, 'GENERIC_ERROR', 'Generic failure during image inspection.'],
  ],
  exportContainer: [
    ['InvalidExportContainerParameters', 422, 'VALIDATION_ERROR', 'Invalid export container parameters.'],
    ['ResolveContainerName', 500, 'DB_ERROR', 'Failed to resolve container name.'],
    ['ContainerNotFound', 404, 'NOT_FOUND', 'Container not found.'],
    ['FetchContainerInfoFailure', 500, 'CONTAINER_SERVICE_ERROR', 'Failed to fetch container information.'],
    ['ExportContainerPermissionDenied', 403, 'FILE_SYSTEM_ERROR', 'Permission denied to export container.'],
    ['InsufficientDiskSpaceForExport', 507, 'FILE_SYSTEM_ERROR', 'Insufficient disk space to export container.'],
    ['ReadOnlyFileSystem', 500, 'FILE_SYSTEM_ERROR', 'File system is read-only.'],
    ['ContainerBundleNotFound', 500, 'IMAGE_SERVICE_ERROR', 'Container bundle not found.'],
    ['ExportContainerIOFailure', 500, 'FILE_SYSTEM_ERROR', 'IO failure during container export.'],
    ['ExportContainerFailure', 500, 'IMAGE_SERVICE_ERROR', 'Failed to export container.'],
    ['GenericFailure', 500, 'GENERIC_ERROR', 'Generic failure during container export.'],
  ],
};

test('every documented class is exported, word for word', () => {
  assert.equal(require('..').errors, K3Core.errors);
  for (const [op, rows] of Object.entries(documented)) {
    assert.deepEqual(Object.keys(catalogue.operations[op]).sort(), rows.map((r) => r[0]).sort(), `catalogue of ${op}`);
    for (const [name, statusCode, type, message] of rows) {
      const Cls = K3Core.errors[name];
      assert.equal(typeof Cls, 'function', name);
      const err = errors.create(op, name, { error: 'why' });
      assert.ok(err instanceof Cls);
      assert.ok(err instanceof K3Core.errors.K3Error);
      assert.ok(err instanceof Error);
      assert.equal(err.name, name);
      assert.equal(err.message, message);
      assert.equal(err.statusCode, statusCode);
      assert.equal(err.type, type);
      assert.deepEqual(err.details, { type, statusCode, error: 'why' });
    }
  }
});

test('details keep the documented order and extra keys', () => {
  const err = errors.create('exportContainer', 'InsufficientDiskSpaceForExport', {
    error: 'No space left on device (ENOSPC)', containerId: 'my-container', filePath: '/tmp/c.tar', requiredSpace: '5 GB', availableSpace: '2 GB',
  });
  assert.deepEqual(Object.keys(err.details), ['type', 'statusCode', 'containerId', 'filePath', 'requiredSpace', 'availableSpace', 'error']);
});

test('createFullMessage names the class, code, every detail and how to fix it', () => {
  const cause = Object.assign(new Error('GET /v2/x/manifests/latest: MANIFEST_UNKNOWN'), { code: 'MANIFEST_UNKNOWN' });
  const err = errors.create('inspectAnImage', 'ImageNotFoundInRegistry', { imageName: 'nonexistent-app', error: 'manifest unknown' }, cause);
  const text = err.createFullMessage();
  assert.match(text, /^ImageNotFoundInRegistry \[404 NOT_FOUND\]: Image not found in registry\./);
  assert.match(text, /imageName: nonexistent-app/);
  assert.match(text, /error: manifest unknown/);
  assert.match(text, /Cause: MANIFEST_UNKNOWN: GET/);
  assert.match(text, /How to solve:\n {2}- Check the image name\./);
  assert.equal(err.cause, cause);
});

test('errors serialise to JSON with their documented fields', () => {
  const err = errors.create('inspectAnImage', 'RegistryConnectionFailure', { imageName: 'alpine', error: 'connection timeout' });
  assert.deepEqual(JSON.parse(JSON.stringify(err)), {
    name: 'RegistryConnectionFailure', message: 'Failed to connect to registry.', statusCode: 500, type: 'NETWORK_ERROR',
    details: { type: 'NETWORK_ERROR', statusCode: 500, imageName: 'alpine', error: 'connection timeout' },
  });
});

test('a logger sees each operation, and a throwing logger breaks nothing', async () => {
  const seen = [];
  const logger = {
    debug: (msg) => seen.push(['debug', msg]),
    warn: (msg, fields) => seen.push(['warn', msg, fields.error && fields.error.error]),
    info: () => { throw new Error('logger failure'); },
  };
  const k3 = new K3Core({ logger });
  const err = await k3.imageCore.inspectAnImage('bad name', { imageName: 'bad name' }).then(() => null, (e) => e);
  assert.ok(err instanceof K3Core.errors.InvalidInspectParameters);
  assert.deepEqual(seen, [
    ['debug', 'k3-core inspectAnImage started'],
    ['warn', 'k3-core inspectAnImage failed: InvalidInspectParameters', 'Image name contains invalid characters'],
  ]);
});
