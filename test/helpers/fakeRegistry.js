'use strict';
// A tiny registry of our own for what a real one will not serve: schema 1
// manifests, content that lies about its digest, and a server that accepts
// connections and never answers.
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

module.exports = { startFakeRegistry, startSilentServer, closedPort };
