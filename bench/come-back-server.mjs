// node bench/come-back-server.mjs <port> <backAfterSeconds> <hosts>
// For bench/come-back.mjs: 8 hosts (127.5.0.1-8) that answer every request
// in 100 ms from the start, and <hosts> hosts (hostAddress in sheets.mjs) that refuse
// connections (nothing listens) until <backAfterSeconds> have passed, then
// answer at once. Every host on the same port, so the export's URLs are
// known before the hosts listen. 400 x 600 sheets. Prints "up" once the
// slow hosts listen; exits when its stdin closes.
import { createServer } from 'node:http';
import { hostAddress, sheetBodies } from './sheets.mjs';

const [port, backAfter, hosts] = process.argv.slice(2).map(Number);
const bodies = await sheetBodies('400x600');
const serve = (delayMs) => (req, res) => {
  const body = bodies[req.url.length % bodies.length];
  const answer = () => {
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length });
    res.end(body);
  };
  if (delayMs > 0) setTimeout(answer, delayMs);
  else answer();
};
const listen = (address, handler) => new Promise((resolve, reject) => createServer(handler).once('error', reject).listen(port, address, resolve));
for (let i = 1; i <= 8; i++) await listen(`127.5.0.${i}`, serve(100));
process.stdout.write('up\n');
setTimeout(async () => {
  for (let k = 0; k < hosts; k++) await listen(hostAddress(1, k, hosts), serve(0));
}, backAfter * 1000);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
