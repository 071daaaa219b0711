const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
const inspectWithErrorHandling = async (imageName, imageTag) => {
try {
const imageInfo = await k3.imageCore.inspectAnImage(imageName, {
imageName: imageName,
imageTag: imageTag
});
return { success: true, data: imageInfo };
} catch (error) {
if (error.statusCode === 404) {
console.log(`Image ${imageName}:${imageTag} not found in registry`);
return { success: false, error: 'Not found' };
} else if (error.statusCode === 401) {
console.log(`Authentication failed for ${imageName}:${imageTag}`);
return { success: false, error: 'Authentication failed' };
} else if (error.statusCode === 500) {
console.log(`Connection error while inspecting ${imageName}:${imageTag}`);
return { success: false, error: 'Connection error' };
} else {
console.log(`Failed to inspect ${imageName}:${imageTag}`);
return { success: false, error: error.message };
}
}
};
const result = await inspectWithErrorHandling(`${R}/myapp`, 'v1.0');
console.log('Inspection result:', result);
})();
