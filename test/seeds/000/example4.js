const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();

const containersToExport = [
{ name: 'web-server', path: `${R}/backup/web-server.tar` },
{ name: 'database', path: `${R}/backup/database.tar` },
{ name: 'cache', path: `${R}/backup/cache.tar` }
];

const results = [];

for (const container of containersToExport) {
try {
const result = await k3.containerCore.exportContainer(
container.name,
container.path
);
results.push({
container: container.name,
status: 'success',
message: result
});
console.log(`${container.name} exported`);
} catch (error) {
results.push({
container: container.name,
status: 'failed',
error: error.message
});
console.log(`✗ Failed to export ${container.name}`);
}
}

console.log('\nExport Summary:');
console.table(results);
})();
