'use strict';
// Image references as the k3 command takes them: skopeo's transport
// prefixes (docker://NAME, oci:DIR[:REF], oci-archive:FILE[:REF],
// docker-archive:FILE[:REF], k3:NAME for the store) or a plain registry name
// as docker takes it (NAME[:TAG] or NAME@DIGEST).

const LOCAL = ['oci', 'oci-archive', 'docker-archive'];

// -> { transport, name, tag } with tag '' when the reference has none.
function parseImageRef(ref) {
  const text = String(ref);
  for (const transport of LOCAL) {
    if (text.startsWith(`${transport}:`)) {
      // As skopeo: the path ends at the first colon; what follows names the image.
      const rest = text.slice(transport.length + 1);
      const colon = rest.indexOf(':');
      return colon < 0
        ? { transport, name: rest, tag: '' }
        : { transport, name: rest.slice(0, colon), tag: rest.slice(colon + 1) };
    }
  }
  if (text.startsWith('k3:')) return { transport: 'k3', ...splitTag(text.slice(3)) };
  return { transport: 'docker', ...splitTag(text.replace(/^docker:\/\//, '')) };
}

// NAME@sha256:... or NAME:TAG, the tag after the last '/' (a registry's
// port is not a tag).
function splitTag(ref) {
  const at = ref.indexOf('@');
  if (at >= 0) return { name: ref.slice(0, at), tag: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: '' };
}

module.exports = { parseImageRef };
