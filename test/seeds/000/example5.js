const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
const fs = require('fs');

const exportWithErrorHandling = async (containerId, filePath) => {
try {
// Check disk space
const dirPath = filePath.substring(0, filePath.lastIndexOf('/'));
const stats = fs.statSync(dirPath);
const availableSpace = stats.bavail * stats.bsize;

console.log(`Available space: ${(availableSpace / 1024 / 1024 / 1024).toFixed(2)} GB`);

const result = await k3.containerCore.exportContainer(containerId, filePath);
return { success: true, message: result };
} catch (error) {
if (error.statusCode === 404) {
console.log(`ERROR: Container ${containerId} not found`);
return { success: false, error: 'Container not found' };
} else if (error.statusCode === 403) {
console.log(`ERROR: Permission denied for ${filePath}`);
return { success: false, error: 'Permission denied' };
} else if (error.statusCode === 507) {
console.log(`ERROR: Insufficient disk space`);
return { success: false, error: 'Insufficient disk space' };
} else if (error.statusCode === 422) {
console.log('ERROR: Invalid parameters');
return { success: false, error: 'Invalid parameters' };
} else {
console.log(`ERROR: Export failed - ${error.message}`);
return { success: false, error: error.message };
}
}
};

const result = await exportWithErrorHandling('my-container', `${R}/tmp/my-container.tar`);
console.log('Result:', result);
})();
