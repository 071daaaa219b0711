const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
try {
const imageInfo = await k3.imageCore.inspectAnImage(`${R}/nginx`, {
imageName: `${R}/nginx`,
imageTag: '1.25'
});
const totalSize = imageInfo.LayersData.reduce((sum, layer) =>
sum + (layer.Size || 0), 0
);
console.log('Image Name:', 'nginx:1.25');
console.log('Total Size:', (totalSize / 1024 / 1024).toFixed(2), 'MB');
console.log('Created:', imageInfo.Created);
console.log('Architecture:', imageInfo.Architecture);
} catch (error) {
console.log('ERROR: Failed to inspect image');
console.log(error.message);
}
})();
