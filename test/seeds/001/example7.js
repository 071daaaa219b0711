const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
const images = [
{ name: `${R}/alpine`, tag: 'latest' },
{ name: `${R}/nginx`, tag: '1.25' },
{ name: `${R}/node`, tag: '18' }
];
const results = [];
for (const img of images) {
try {
const imageInfo = await k3.imageCore.inspectAnImage(img.name, {
imageName: img.name,
imageTag: img.tag
});
const size = imageInfo.LayersData.reduce((sum, layer) =>
sum + (layer.Size || 0), 0
);
results.push({
image: `${img.name}:${img.tag}`,
size: (size / 1024 / 1024).toFixed(2) + ' MB',
architecture: imageInfo.Architecture,
os: imageInfo.Os,
layers: imageInfo.LayersData.length
});
console.log(`✓ Inspected ${img.name}:${img.tag}`);
} catch (error) {
console.log(`✗ Failed to inspect ${img.name}:${img.tag} - ${error.message}`);
}
}
console.log('\nInspection Results:');
console.table(results);
})();
