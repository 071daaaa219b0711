// Seed 001's patterns 1, 3, 4 and 5. The document shows them as snippets
// that use a `k3` made earlier and top-level await; they run here inside one
// async function with that `k3`, otherwise as written (names prefixed).
const R = process.env.K3_TEST_REGISTRY;
const K3Core = require('k3-core');
(async () => {
const k3 = new K3Core();

// Pattern 1
const inspectWithFallback = async (imageName, imageTag) => {
try {
const imageInfo = await k3.imageCore.inspectAnImage(imageName, {
imageName: imageName,
imageTag: imageTag
});
console.log('Inspect successful');
return imageInfo;
} catch (error) {
if (error.statusCode === 404) {
console.log(`Image ${imageName}:${imageTag} not found`);
console.log('Trying alternative sources...');
const alternatives = [
{ name: 'gcr.io/' + imageName, tag: imageTag },
{ name: 'quay.io/' + imageName, tag: imageTag },
{ name: imageName, tag: 'latest' }
];
for (const alt of alternatives) {
try {
const info = await k3.imageCore.inspectAnImage(alt.name, {
imageName: alt.name,
imageTag: alt.tag
});
console.log(`Found at: ${alt.name}:${alt.tag}`);
return info;
} catch (e) {
console.log(`Not found at ${alt.name}:${alt.tag}`);
}
}
throw new Error(`Could not find ${imageName}:${imageTag} anywhere`);
}
throw error;
}
};
await inspectWithFallback(`${R}/myapp`, 'v1.0');

// Pattern 3
const inspectWithRetry = async (imageName, imageTag, maxRetries = 3) => {
let lastError;
for (let attempt = 1; attempt <= maxRetries; attempt++) {
try {
console.log(`Inspect attempt ${attempt}/${maxRetries}`);
const imageInfo = await k3.imageCore.inspectAnImage(imageName, {
imageName: imageName,
imageTag: imageTag
});
console.log('Inspect successful');
return imageInfo;
} catch (error) {
if (error.statusCode === 500 && error.message.includes('connection')) {
lastError = error;
if (attempt < maxRetries) {
const waitTime = Math.pow(2, attempt) * 1000;
console.log(`Connection error, retrying in ${waitTime / 1000}s...`);
await new Promise(resolve => setTimeout(resolve, waitTime));
}
} else {
throw error;
}
}
}
throw lastError;
};
const result = await inspectWithRetry(`${R}/nginx`, '1.25');
console.log('Retry result digest:', result.Digest);

// Pattern 4
class ImageInspectCache {
constructor(k3, cacheTime = 3600000) { // 1 hour default
this.k3 = k3;
this.cache = new Map();
this.cacheTime = cacheTime;
}
async inspect(imageName, imageTag) {
const cacheKey = `${imageName}:${imageTag}`;
// Check cache
if (this.cache.has(cacheKey)) {
const cached = this.cache.get(cacheKey);
if (Date.now() - cached.timestamp < this.cacheTime) {
console.log(`Using cached inspection for ${cacheKey}`);
return cached.data;
}
}
// Inspect
console.log(`Inspecting ${cacheKey}...`);
const imageInfo = await this.k3.imageCore.inspectAnImage(imageName, {
imageName: imageName,
imageTag: imageTag
});
// Cache result
this.cache.set(cacheKey, {
data: imageInfo,
timestamp: Date.now()
});
console.log(`Cached inspection for ${cacheKey}`);
return imageInfo;
}
invalidate(imageName, imageTag) {
const cacheKey = `${imageName}:${imageTag}`;
this.cache.delete(cacheKey);
console.log(`Cache invalidated for ${cacheKey}`);
}
}
const cache = new ImageInspectCache(k3);
const info1 = await cache.inspect(`${R}/alpine`, 'latest');
const info2 = await cache.inspect(`${R}/alpine`, 'latest'); // From cache
console.log('Same object from cache:', info1 === info2);

// Pattern 5
class CompatibilityChecker {
constructor(k3) {
this.k3 = k3;
this.requiredArch = 'amd64';
this.requiredOs = 'linux';
}
async checkCompatibility(imageName, imageTag) {
try {
const imageInfo = await this.k3.imageCore.inspectAnImage(imageName, {
imageName: imageName,
imageTag: imageTag
});
const compatible = {
arch: imageInfo.Architecture === this.requiredArch,
os: imageInfo.Os === this.requiredOs,
overall: imageInfo.Architecture === this.requiredArch &&
imageInfo.Os === this.requiredOs
};
console.log(`Image: ${imageName}:${imageTag}`);
console.log(` Architecture: ${imageInfo.Architecture} (Required: ${this.requiredArch}) - ${compatible.arch ? 'OK' : 'INCOMPATIBLE'}`);
console.log(` OS: ${imageInfo.Os} (Required: ${this.requiredOs}) - ${compatible.os ? 'OK' : 'INCOMPATIBLE'}`);
console.log(` Overall: ${compatible.overall ? 'COMPATIBLE' : 'NOT COMPATIBLE'}`);
return compatible;
} catch (error) {
console.log(`Failed to check compatibility: ${error.message}`);
return { arch: false, os: false, overall: false, error: error.message };
}
}
}
const checker = new CompatibilityChecker(k3);
await checker.checkCompatibility(`${R}/alpine`, 'latest');
})();
