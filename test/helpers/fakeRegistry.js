'use strict';
// A tiny registry of our own for what a real one will not serve: schema 1
// manifests, content that lies about its digest, a server that accepts
// connections and never answers, and a proxy that holds blobs half sent.
const http = require('node:http');
const net = require('node:net');

// routes: { '/v2/repo/manifests/tag': {status, headers, body} }. /v2/ answers 200.
async function startFakeRegistry(routes) {
  const server = http.createServer((req, res) => {
    if (req.url === '/v2/' || req.url === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end('{}');
    }
    const route = routes[req.url];
    if (!route) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    }
    const body = Buffer.from(route.body || '');
    res.writeHead(route.status || 200, { 'Content-Length': body.length, ...route.headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { host: `127.0.0.1:${port}`, stop: () => new Promise((resolve) => server.close(resolve)) };
}

// Accepts TCP connections and never writes a byte.
async function startSilentServer() {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    host: `127.0.0.1:${port}`,
    stop: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// A port nothing listens on.
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// A proxy in front of the registry at target (host:port) that sends the
// first `hold` blobs of more than 1 MiB only up to their middle, then holds
// them for as long as the client waits; other requests pass whole. A pull
// through it cannot end, so an abort is sure to find it in the middle,
// however fast the machine. Uploads are held the same way: the first 1 MiB
// of an upload's body reaches the registry, then the proxy reads no more,
// so a push cannot end either. held: blobs half sent (or uploads begun) and
// held; passed: large blobs sent whole.
async function startHoldingProxy(target, { hold = Infinity } = {}) {
  const [hostname, port] = target.split(':');
  const sockets = new Set();
  const counts = { held: 0, passed: 0 };
  let claimed = 0;
  const server = http.createServer((req, res) => {
    const upstream = http.request({ hostname, port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      const size = Number(up.headers['content-length']);
      const large = req.method === 'GET' && req.url.includes('/blobs/') && size > 1 << 20;
      if (!large || claimed >= hold) {
        if (large) res.on('finish', () => { counts.passed++; });
        up.pipe(res);
        return;
      }
      claimed++;
      const half = Math.floor(size / 2);
      let sent = 0;
      up.on('data', (chunk) => {
        if (sent >= half) return;
        const part = chunk.subarray(0, half - sent);
        sent += part.length;
        res.write(part);
        if (sent >= half) {
          up.destroy(); // the rest never comes; res stays open
          counts.held++;
        }
      });
    });
    upstream.on('error', () => res.destroy());
    const upload = (req.method === 'PATCH' || req.method === 'PUT') && req.url.includes('/blobs/uploads/');
    if (!upload || claimed >= hold) {
      req.pipe(upstream);
      return;
    }
    let received = 0;
    req.on('data', (chunk) => {
      if (received >= 1 << 20) return;
      received += chunk.length;
      upstream.write(chunk);
      if (received >= 1 << 20) {
        req.pause(); // the client blocks on its full socket
        claimed++;
        counts.held++;
      }
    });
    req.on('end', () => upstream.end()); // an upload of less than 1 MiB
    req.on('close', () => { if (!req.complete) upstream.destroy(); }); // the client gave up
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${server.address().port}`,
    get held() { return counts.held; },
    get passed() { return counts.passed; },
    stop: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

module.exports = { startFakeRegistry, startSilentServer, closedPort, startHoldingProxy };
