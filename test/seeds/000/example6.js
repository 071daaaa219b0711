const R = process.env.K3_TEST_FS;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();
const fs = require('fs');
const path = require('path');

const createContainerBackup = async (containerId) => {
try {
// Create backup directory
const backupDir = `${R}/backups/containers`;
if (!fs.existsSync(backupDir)) {
fs.mkdirSync(backupDir, { recursive: true });
}

// Generate backup filename
const timestamp = new Date().toISOString().replace(/[:.]/g, '-');
const backupFile = path.join(backupDir, `${containerId}-${timestamp}.tar`);

console.log(`Creating backup: ${backupFile}`);

const result = await k3.containerCore.exportContainer(containerId, backupFile);

// Get file info
const stats = fs.statSync(backupFile);

console.log('Backup created:');
console.log(` File: ${backupFile}`);
console.log(` Size: ${(stats.size / 1024 / 1024).toFixed(2)} MB`);

return { success: true, backupFile: backupFile, size: stats.size };
} catch (error) {
console.log('ERROR:', error.message);
return { success: false, error: error.message };
}
};

const backup = await createContainerBackup('my-container');
console.log('Backup result:', backup);
})();
