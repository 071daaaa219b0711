// Seed 000's error-handling patterns 1, 2 and 3. The document shows them as
// snippets that use a `k3` made earlier and top-level await; they run here
// inside one async function with that `k3`, otherwise as written (paths moved
// under $K3_TEST_FS). Added, and marked as such: each call's result is
// printed, and pattern 1 is also called with a container that does not
// exist, the case it is written for.
const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();

// Pattern 1
const exportWithContainerCheck = async (containerId, filePath) => {
try {
const result = await k3.containerCore.exportContainer(containerId, filePath);
return result;
} catch (error) {
if (error.statusCode === 404) {
console.log(`Container ${containerId} not found`);

// Get available containers
const containers = await k3.containerCore.listContainers();
console.log('Available containers:');
containers.forEach(c => {
console.log(` - ${c.Name} (${c.State})`);
});

throw new Error(`Container ${containerId} not found. Use one from list above.`);
}
throw error;
}
};

const r1 = await exportWithContainerCheck('my-container', `${R}/tmp/my-container.tar`);
console.log('Pattern 1 result:', r1); // added
try { // added
await exportWithContainerCheck('missing-container', `${R}/tmp/missing-container.tar`);
} catch (e) {
console.log('Pattern 1 thrown:', e.message);
}

// Pattern 2
const exportWithDiskCheck = async (containerId, filePath) => {
const fs = require('fs');

try {
// Check available space
const dirPath = filePath.substring(0, filePath.lastIndexOf('/'));
const stats = fs.statSync(dirPath);
const availableSpace = stats.bavail * stats.bsize;

console.log(`Available space: ${(availableSpace / 1024 / 1024 / 1024).toFixed(2)} GB`);

if (availableSpace < 1 * 1024 * 1024 * 1024) {
console.log('WARNING: Less than 1GB available');
console.log('Attempting to free space...');

// Try to clean up temp directory
const tmpDir = `${R}/tmp`;
const files = fs.readdirSync(tmpDir).filter(f => f.endsWith('.tar'));
for (const file of files.slice(0, 3)) { // Remove only a few files
fs.unlinkSync(`${tmpDir}/${file}`);
console.log(`Removed ${file}`);
}
}

const result = await k3.containerCore.exportContainer(containerId, filePath);
return { success: true, message: result };
} catch (error) {
if (error.statusCode === 507) {
console.log('ERROR: Insufficient disk space');
return { success: false, error: 'Insufficient disk space' };
}
throw error;
}
};

const r2 = await exportWithDiskCheck('my-container', `${R}/tmp/my-container.tar`);
console.log('Pattern 2 result:', r2); // added

// Pattern 3
const exportWithPermissionCheck = async (containerId, filePath) => {
const fs = require('fs');

try {
// Check if directory is writable
const dir = filePath.substring(0, filePath.lastIndexOf('/'));

try {
fs.accessSync(dir, fs.constants.W_OK);
console.log(`Directory is writable: ${dir}`);
} catch (err) {
console.log(`ERROR: Directory not writable: ${dir}`);
console.log('Available alternatives:');
console.log(' - /tmp (usually writable)');
console.log(' - /home/user (your home directory)');
throw new Error('Directory not writable');
}

const result = await k3.containerCore.exportContainer(containerId, filePath);
return { success: true, message: result };
} catch (error) {
if (error.statusCode === 403) {
console.log('ERROR: Permission denied');
return { success: false, error: 'Permission denied' };
}
throw error;
}
};

const r3 = await exportWithPermissionCheck('my-container', `${R}/tmp/my-container.tar`);
console.log('Pattern 3 result:', r3); // added
})();
