// A loopback image server for the download benchmarks, run as its own process
// so it does not share an event loop with what it measures.
//   node bench/image-server.mjs <firstOctet> <hosts> <delayMs> [hangOctet] [mixed] [sheet WxH]
// Listens on 127.0.0.<firstOctet>..+hosts-1 (127.1.y.z for thousands of
// hosts; and a host that never answers), prints {"ports":{"127.0.0.x":port}}
// once ready. GET /<n>.jpg serves a JPEG: a 200 x 150 noise image, or with
// `sheet` a herbarium-sheet-like JPEG of that size (bench/sheets.mjs), with an
// ETag, honouring If-None-Match (304, no body). A line "version 1" on stdin
// gives every tenth image (n % 10 == 0) new bytes and a new ETag (bench:recheck).
// With BENCH_TLS naming a file from tls-hosts.mjs, every host serves HTTPS with its certificate.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import sharp from 'sharp';
import { hostAddress, sheetBodies } from './sheets.mjs';

const [first, hosts, delayMs, hangOctet, mixed] = process.argv.slice(2, 7).map(Number);
const sheet = process.argv[7];
// A few real JPEGs of realistic size (noise compresses badly, as photos do).
const bodies = sheet ? await sheetBodies(sheet) : await Promise.all(
  [0, 1, 2, 3].map(async (seed) => {
    const raw = Buffer.alloc(200 * 150 * 3);
    let x = seed + 1;
    for (let i = 0; i < raw.length; i++) raw[i] = (x = (x * 1103515245 + 12345) & 0x7fffffff) >> 16;
    const image = sharp(raw, { raw: { width: 200, height: 150, channels: 3 } });
    // With `mixed`, a third each of JPEG, PNG and TIFF: herbdl converts the last two.
    if (mixed && seed % 3 === 1) return image.png().toBuffer();
    if (mixed && seed % 3 === 2) return image.tiff().toBuffer();
    return image.jpeg({ quality: 80 }).toBuffer();
  }),
);

// Requests being answered per host, and the most at once: politeness is measured here, at the host.
const inFlight = new Map();
const maxInFlight = new Map();

function handler(req, res) {
  const host = req.socket.localAddress;
  const now = (inFlight.get(host) ?? 0) + 1;
  inFlight.set(host, now);
  if (now > (maxInFlight.get(host) ?? 0)) maxInFlight.set(host, now);
  res.once('close', () => inFlight.set(host, inFlight.get(host) - 1));
  served++;
  const n = Number(/(\d+)/.exec(req.url ?? '')?.[1] ?? 0);
  const changed = version > 0 && n % 10 === 0;
  const body = bodies[((mixed ? n % 3 : n % bodies.length) + (changed ? 1 : 0)) % bodies.length];
  const etag = `"${n}-v${changed ? version : 0}"`;
  const send = () => {
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    bytesSent += body.length;
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length, etag });
    res.end(body);
  };
  if (delayMs > 0) setTimeout(send, delayMs);
  else send();
}

const tls = process.env.BENCH_TLS ? JSON.parse(readFileSync(process.env.BENCH_TLS, 'utf8')) : undefined;
const tlsKey = tls ? readFileSync(tls.key) : undefined;
let served = 0;
let bytesSent = 0;
let version = 0;
const ports = {};
const listen = (address, fn) =>
  new Promise((resolve) => {
    const cert = tls?.certs[address];
    const server = cert ? createTlsServer({ key: tlsKey, cert: readFileSync(cert) }, fn) : createServer(fn);
    server.keepAliveTimeout = 30_000;
    server.listen(0, address, () => {
      ports[address] = server.address().port;
      resolve();
    });
  });
for (let i = 0; i < hosts; i++) await listen(hostAddress(first, i, hosts), handler);
if (hangOctet) await listen(`127.0.0.${hangOctet}`, () => {}); // accepts, never answers
process.stdout.write(JSON.stringify({ ports, bytes: bodies.map((b) => b.length) }) + '\n');
// A line "stats" on stdin: prints {"served":n,"maxInFlight":m} (the most any host had at once) and starts counting again.
// Ends with its parent.
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text) => {
  const v = /version (\d+)/.exec(text);
  if (v) version = Number(v[1]);
  if (!text.includes('stats')) return;
  process.stdout.write(JSON.stringify({ served, bytesSent, maxInFlight: Math.max(0, ...maxInFlight.values()) }) + '\n');
  served = 0;
  bytesSent = 0;
  maxInFlight.clear();
});
process.stdin.on('end', () => process.exit(0));
