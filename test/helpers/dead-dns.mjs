// A small internet of its own, for test/dns.test.ts: run inside a network and
// mount namespace (unshare) where it may listen on port 53 and /etc/resolv.conf
// names it. It serves DNS on 127.0.0.53: h<N>.test is 127.0.1.<10+N>, where
// an image server answers; dead<N>.test is never answered (a lapsed domain
// whose servers are gone); anything else is NXDOMAIN (nx<N>.test: a name
// that no longer exists); mirror.lab.test is host 0's address, so the name
// `mirror` is found only through a search list. Then it runs the real CLI
// (ingest, run --json, status --json) on `healthy` images over `hosts` hosts,
// `dead` images of dead names, `nx` images of names that do not exist and
// `searched` images at http://mirror:8080/, and prints one JSON line:
// { run: {status, stderr, json}, status: {...}, dnsQueries: {answered, unanswered, nxdomain}, served: [requests per host] }.
//   node dead-dns.mjs <dir> <hosts> <healthy> <dead> <nx> <searched> -- <herbdl run flags...>
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';

const [dir, hosts, healthy, dead, nx, searched] = process.argv.slice(2, 8);
const runFlags = process.argv.slice(process.argv.indexOf('--') + 1);
const bin = new URL('../../bin/herbdl', import.meta.url).pathname;

const queries = { answered: 0, unanswered: 0, nxdomain: 0 };
const dns = dgram.createSocket('udp4');
dns.on('message', (msg, from) => {
  let at = 12;
  const labels = [];
  while (msg[at] !== 0) {
    labels.push(msg.subarray(at + 1, at + 1 + msg[at]).toString());
    at += msg[at] + 1;
  }
  const name = labels.join('.');
  const type = msg.readUInt16BE(at + 1);
  if (name.startsWith('dead')) {
    queries.unanswered++;
    return;
  }
  const host = /^h(\d+)\.test$/.exec(name) ?? (name === 'mirror.lab.test' ? [name, '0'] : null);
  if (host) queries.answered++;
  else queries.nxdomain++;
  const answers = host && type === 1 ? 1 : 0;
  const header = Buffer.from(msg.subarray(0, 12));
  header.writeUInt16BE(0x8180 | (host ? 0 : 3), 2); // a response, recursion available; NXDOMAIN for an unknown name
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers, 6);
  header.writeUInt32BE(0, 8);
  const parts = [header, msg.subarray(12, at + 5)];
  if (answers) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 1, 10 + Number(host[1])]));
  dns.send(Buffer.concat(parts), from.port, from.address);
});
await new Promise((resolve) => dns.bind(53, '127.0.0.53', resolve));

const body = await sharp({ create: { width: 400, height: 600, channels: 3, background: '#d8d0c0' } }).jpeg().toBuffer();
const served = Array.from({ length: Number(hosts) }, () => 0);
for (let n = 0; n < Number(hosts); n++) {
  const server = createServer((_req, res) => {
    served[n]++;
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(8080, `127.0.1.${10 + n}`, resolve));
}

const rows = ['gbifID\ttype\tformat\tidentifier'];
let id = 7_000_000;
for (let i = 0; i < Number(healthy); i++) rows.push(`${id++}\tStillImage\timage/jpeg\thttp://h${i % Number(hosts)}.test:8080/${i}.jpg`);
for (let i = 0; i < Number(dead); i++) rows.push(`${id++}\tStillImage\timage/jpeg\thttp://dead${i}.test:8080/${i}.jpg`);
for (let i = 0; i < Number(nx); i++) rows.push(`${id++}\tStillImage\timage/jpeg\thttp://nx${i}.test:8080/${i}.jpg`);
for (let i = 0; i < Number(searched); i++) rows.push(`${id++}\tStillImage\timage/jpeg\thttp://mirror:8080/s${i}.jpg`);
writeFileSync(join(dir, 'dns.txt'), rows.join('\n') + '\n');
const db = join(dir, 'dns.db');

function herbdl(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    // Bounded: a run that does not end within this is what the test is about.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

await herbdl(['ingest', join(dir, 'dns.txt'), '--db', db]);
const run = await herbdl(['run', '--db', db, '--out', join(dir, 'dns-images'), '--allow-private-network', '--json', ...runFlags]);
const status = await herbdl(['status', '--db', db, '--json']);
process.stdout.write(JSON.stringify({ run: { status: run.status, stderr: run.stderr, json: run.status === 0 ? JSON.parse(run.stdout.trim().split('\n').pop()) : undefined }, status: JSON.parse(status.stdout), dnsQueries: queries, served }) + '\n');
process.exit(0);
