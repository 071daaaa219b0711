const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
try {
const imageInfo = await k3.imageCore.inspectAnImage(`${R}/node`, {
imageName: `${R}/node`,
imageTag: '18'
});
console.log('Image Environment Variables:');
if (imageInfo.Env && imageInfo.Env.length > 0) {
imageInfo.Env.forEach(env => {
const [key, value] = env.split('=');
console.log(` ${key}: ${value}`);
});
} else {
console.log(' No environment variables set');
}
} catch (error) {
console.log('ERROR: Failed to inspect image');
}
})();
