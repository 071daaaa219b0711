import K3Core = require('../..');
const k3 = new K3Core({ logger: console });
async function f(): Promise<void> {
  try {
    const info = await k3.imageCore.inspectAnImage('alpine', { imageName: 'alpine', imageTag: 'latest', signal: AbortSignal.timeout(10) });
    const size: number = info.LayersData.reduce((s, l) => s + l.Size, 0);
    console.log(size, info.Digest, info.PlatformDigest);
  } catch (e) {
    if (e instanceof K3Core.errors.ImageNotFoundInRegistry) console.log(e.createFullMessage(), e.details.error);
    if (e instanceof K3Core.K3Error) console.log(e.statusCode);
  }
}
f();
