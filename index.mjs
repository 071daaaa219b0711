// k3-core as an ES module: `import K3Core, { errors } from 'k3-core'`. The
// same instance as require('k3-core'), so an error class is the same class
// either way; every named export of index.js is re-exported.
export * from './index.js';
export { default } from './index.js';
