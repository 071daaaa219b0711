const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
const fs = require('fs');

try {
// Step 1: Export
console.log('Step 1: Exporting container...');
const exportResult = await k3.containerCore.exportContainer(
'old-service',
`${R}/tmp/old-service-export.tar`
);
console.log('✓ Container exported');

// Step 2: Verify export
console.log('Step 2: Verifying export...');
const stats = fs.statSync(`${R}/tmp/old-service-export.tar`);
console.log(`✓ Export verified (${(stats.size / 1024 / 1024).toFixed(2)} MB)`);

// Step 3: Move to permanent location
console.log('Step 3: Moving to archive...');
const archivePath = `${R}/archive/old-service-${Date.now()}.tar`;
fs.renameSync(`${R}/tmp/old-service-export.tar`, archivePath);
console.log(`✓ Moved to ${archivePath}`);

// Step 4: Remove container (optional)
console.log('Step 4: Removing old container...');
await k3.containerCore.removeContainer('old-service');
console.log('✓ Old container removed');

console.log('\n✓ Successfully archived and removed old container');
} catch (error) {
console.log('ERROR:', error.message);
}
})();
