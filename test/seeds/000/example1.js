const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');

(async () => {
const k3 = new K3Core();

try {
const result = await k3.containerCore.exportContainer(
'my-container',
`${R}/tmp/my-container.tar`
);
console.log('Success:', result);
// Output: my-container has exported successfully to /tmp/my-container.tar
} catch (error) {
console.log('ERROR:', error.createFullMessage());
}
})();
