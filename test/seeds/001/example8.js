const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
try {
const imageInfo = await k3.imageCore.inspectAnImage(`${R}/alpine`, {
imageName: `${R}/alpine`,
imageTag: 'latest'
});
// Extract metadata
const metadata = {
digest: imageInfo.Digest,
created: new Date(imageInfo.Created),
arch: imageInfo.Architecture,
os: imageInfo.Os,
totalLayers: imageInfo.LayersData.length,
totalSize: imageInfo.LayersData.reduce((sum, l) => sum + (l.Size || 0), 0),
layers: imageInfo.LayersData.map((l, i) => ({
index: i,
digest: l.Digest.substring(0, 12),
size: (l.Size / 1024).toFixed(0) + ' KB'
}))
};
console.log('=== Image Metadata ===');
console.log('Digest:', metadata.digest);
console.log('Created:', metadata.created);
console.log('Architecture:', metadata.arch);
console.log('OS:', metadata.os);
console.log('Total Layers:', metadata.totalLayers);
console.log('Total Size:', (metadata.totalSize / 1024 / 1024).toFixed(2), 'MB');
console.log('\nLayers:');
console.table(metadata.layers);
} catch (error) {
console.log('ERROR: Failed to inspect image');
}
})();
