'use strict';
// The web program: an HTTP server that answers every GET / with a greeting.
// Access lines go to stdout, anything unusual (404s, shutdown) to stderr.
const http = require('http');
const os = require('os');

const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || '0.0.0.0';

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && (req.url === '/' || req.url === '/hello')) {
    const body = `Hello World. Greetings from ${os.hostname()}, served by pid ${process.pid}.\n`;
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(body);
    console.log(`${req.method} ${req.url} 200`);
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end('not found\n');
  console.error(`${req.method} ${req.url} 404 not found`);
});

server.on('error', (err) => {
  console.error(`cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
});

server.listen(port, host, () => {
  console.log(`listening on http://${host}:${port} (pid ${process.pid})`);
});

// pysuper sends SIGTERM (stop_signal) on shutdown: finish open requests, then exit 0.
function shutdown(signal) {
  console.error(`${signal} received, closing the server`);
  server.close(() => process.exit(0));
  // keep-alive connections would hold close() open; do not outlive the stop timeout
  setTimeout(() => process.exit(0), 2000).unref();
  if (server.closeIdleConnections) server.closeIdleConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
