const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
const fs = require('fs');

try {
// Step 1: Export
console.log('Exporting container...');
const exportResult = await k3.containerCore.exportContainer(
'web-server',
`${R}/tmp/web-server-backup.tar`
);
console.log('Export result:', exportResult);

// Step 2: Verify
console.log('Verifying file...');
const stats = fs.statSync(`${R}/tmp/web-server-backup.tar`);

console.log('File verified:');
console.log(` Size: ${(stats.size / 1024 / 1024).toFixed(2)} MB`);
console.log(` Created: ${stats.birthtime}`);
} catch (error) {
console.log('ERROR:', error.message);
}
})();
