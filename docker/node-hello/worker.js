'use strict';
// The worker program: a long-running background job that logs a heartbeat.
// Heartbeats go to stdout; its start and stop notices go to stderr.
const intervalMs = Number(process.env.HEARTBEAT_MS || 2000);

let beats = 0;
let timer = null;

// pysuper sends SIGTERM (stop_signal) on shutdown. The handlers are in place before the
// first line is written, so a stop that follows the first heartbeat is always handled.
function shutdown(signal) {
  clearInterval(timer);
  console.error(`${signal} received after ${beats} heartbeats, exiting`);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

function beat() {
  beats += 1;
  console.log(`heartbeat ${beats}`);
}

console.error(`worker started (pid ${process.pid}), heartbeat every ${intervalMs} ms`);
beat();
timer = setInterval(beat, intervalMs);
