// The types of index.mjs, from index.d.ts: the default export, and the named
// exports index.js sets (test/esm.test.js checks that each one is typed here).
// Other types are reached through the default import, as with require:
// `K3Core.ImageSummary`.
import K3Core = require('./index.js');

export default K3Core;
export declare const errors: K3Core.Errors;
export import K3Error = K3Core.K3Error;
export { K3Core };
