const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();

try {
// List running containers
const containers = await k3.containerCore.listContainers({ state: 'running' });
console.log('Running containers:', containers.length);

if (containers.length > 0) {
const container = containers[0];

// Export container
const result = await k3.containerCore.exportContainer(
container.Id,
`${R}/backup/${container.Name}.tar`
);

console.log('Export result:', result);
console.log(`Container exported: ${container.Name}`);
}
} catch (error) {
console.log('ERROR:', error.message);
}
})();
