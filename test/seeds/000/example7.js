const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();

try {
// Step 1: Get container info
console.log('Step 1: Getting container info...');
const containers = await k3.containerCore.listContainers({ name: 'app-server' });

if (containers.length === 0) {
throw new Error('Container not found');
}

const container = containers[0];
console.log(`Container: ${container.Name}`);
console.log(`Status: ${container.State}`);

// Step 2: Export
console.log('Step 2: Exporting container...');
const exportFile = `${R}/transfer/${container.Name}-migration.tar.gz`;
const result = await k3.containerCore.exportContainer(container.Id, exportFile);
console.log('✓ Export completed');

// Step 3: Create checksum
console.log('Step 3: Creating checksum...');
const crypto = require('crypto');
const fs = require('fs');
const hash = crypto.createHash('sha256');
const stream = fs.createReadStream(exportFile);

stream.on('data', data => hash.update(data));
stream.on('end', () => {
const checksum = hash.digest('hex');
console.log(`✓ Checksum: ${checksum}`);
console.log(`\nReady for transfer:`);
console.log(` File: ${exportFile}`);
console.log(` Checksum: ${checksum}`);
});
} catch (error) {
console.log('ERROR:', error.message);
}
})();
