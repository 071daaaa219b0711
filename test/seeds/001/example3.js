const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
try {
const imageInfo = await k3.imageCore.inspectAnImage(`${R}/ubuntu`, {
imageName: `${R}/ubuntu`,
imageTag: '22.04'
});
console.log(`Image: ubuntu:22.04`);
console.log(`Total Layers: ${imageInfo.LayersData.length}\n`);
imageInfo.LayersData.forEach((layer, index) => {
console.log(`Layer ${index + 1}:`);
console.log(` Digest: ${layer.Digest.substring(0, 20)}...`);
console.log(` Size: ${(layer.Size / 1024 / 1024).toFixed(2)} MB`);
console.log(` MIME Type: ${layer.MIMEType}`);
});
} catch (error) {
console.log('ERROR: Failed to inspect image');
}
})();
