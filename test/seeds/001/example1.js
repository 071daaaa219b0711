const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
try {
const imageInfo = await k3.imageCore.inspectAnImage(`${R}/alpine`, {
imageName: `${R}/alpine`,
imageTag: 'latest'
});
console.log('Image Digest:', imageInfo.Digest);
console.log('Architecture:', imageInfo.Architecture);
console.log('OS:', imageInfo.Os);
console.log('Layers:', imageInfo.Layers.length);
} catch (error) {
console.log(error.createFullMessage());
}
})();
