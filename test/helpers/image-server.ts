/**
 * Real HTTP servers on loopback for download tests. Each listens on its own
 * 127.0.0.x address, so each is a separate host to herbdl. Routes say how to
 * answer; every request is logged with its time.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll } from 'vitest';

export type Route =
  /** With `etag` or `lastModified`, sent as validators and honoured in conditional requests (304, no body). */
  | { kind: 'image'; body?: Buffer; delayMs?: number; gzip?: boolean; etag?: string; lastModified?: string }
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  | { kind: 'html' }
  | { kind: 'hang' }
  | { kind: 'reset-mid-body' }
  | { kind: 'short-body' }
  | { kind: 'redirect'; to: string }
  | { kind: 'json'; body: string; contentType?: string }
  | { kind: 'drip'; everyMs: number }
  | { kind: 'sequence'; steps: Route[] };

/** How a server answers IIIF Image API requests (`.../full/{size}/0/{quality}.jpg`) no route names. */
export interface ImageApi {
  /** Widths above this are refused with `refuse` (a server's maxWidth). */
  readonly maxWidth?: number;
  /** Status for a refused size (default 400). */
  readonly refuse?: number;
  /** The images' own width: a whole-image request (`full`, `max`) wider than maxWidth is refused too. */
  readonly width?: number;
}

const IMAGE_API_REQUEST = /\/(?:full|\d+,\d+,\d+,\d+)\/([^/]+)\/0\/(default|native)\.jpg$/;

export interface LoggedRequest {
  readonly path: string;
  readonly at: number;
  readonly userAgent: string;
}

let jpegCache: Buffer | undefined;
/** A real JPEG made by sharp (decodable, 64x48). */
export async function sampleJpeg(): Promise<Buffer> {
  jpegCache ??= await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 120, g: 160, b: 90 } } }).jpeg().toBuffer();
  return jpegCache;
}

export class ImageServer {
  readonly requests: LoggedRequest[] = [];
  /** Requests being answered now, and the most there ever were at once: what politeness is measured by. */
  inFlight = 0;
  maxInFlight = 0;
  /** Image bodies sent, their bytes, and conditional requests answered 304. */
  bodiesSent = 0;
  bytesSent = 0;
  notModified = 0;
  private readonly routes = new Map<string, Route>();
  /** Set by imageApi(): answers any Image API request on this host. */
  private api: ImageApi | undefined;
  private readonly hits = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  origin = '';

  constructor(readonly address: string, private readonly jpeg: Buffer) {}

  route(path: string, route: Route): string {
    this.routes.set(path, route);
    return this.origin + path;
  }

  imageApi(api: ImageApi = {}): this {
    this.api = api;
    return this;
  }

  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  async listen(): Promise<this> {
    return this.listenOn(0);
  }

  /** Listens on a given port (0: any free one). */
  async listenOn(port: number): Promise<this> {
    this.server = createServer((req, res) => {
      this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
      res.once('close', () => this.inFlight--);
      this.answer(req, res);
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server.listen(port, this.address, resolve));
    this.origin = `http://${this.address}:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(req: IncomingMessage, res: ServerResponse, routeOverride?: Route): void {
    const path = req.url ?? '/';
    if (!routeOverride) this.requests.push({ path, at: Date.now(), userAgent: String(req.headers['user-agent'] ?? '') });
    let route = routeOverride ?? this.routes.get(path) ?? this.imageApiRoute(path) ?? { kind: 'status', status: 404 };
    if (route.kind === 'sequence') {
      const n = this.hits.get(path) ?? 0;
      this.hits.set(path, n + 1);
      route = route.steps[Math.min(n, route.steps.length - 1)] as Route;
      return this.answer(req, res, route);
    }
    switch (route.kind) {
      case 'image': {
        const body = route.body ?? this.jpeg;
        const validators = { ...(route.etag ? { etag: route.etag } : {}), ...(route.lastModified ? { 'last-modified': route.lastModified } : {}) };
        const ifNoneMatch = req.headers['if-none-match'];
        const ifModifiedSince = req.headers['if-modified-since'];
        const unchanged = route.etag ? ifNoneMatch === route.etag : route.lastModified !== undefined && ifModifiedSince !== undefined && Date.parse(ifModifiedSince) >= Date.parse(route.lastModified);
        const send = () => {
          if (unchanged) {
            this.notModified++;
            res.writeHead(304, validators);
            res.end();
            return;
          }
          this.bodiesSent++;
          this.bytesSent += body.length;
          if (route.gzip) {
            const z = gzipSync(body);
            res.writeHead(200, { 'content-type': 'image/jpeg', 'content-encoding': 'gzip', 'content-length': z.length });
            res.end(z);
          } else {
            res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length, ...validators });
            res.end(body);
          }
        };
        if (route.delayMs) setTimeout(send, route.delayMs);
        else send();
        return;
      }
      case 'status': {
        const send = () => {
          res.writeHead(route.status, route.headers ?? {});
          res.end(route.body ?? '');
        };
        if (route.delayMs) setTimeout(send, route.delayMs);
        else send();
        return;
      }
      case 'html':
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.end('<!DOCTYPE html><html><body>Terms of use</body></html>');
        return;
      case 'hang':
        return; // never answers
      case 'reset-mid-body':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': this.jpeg.length });
        res.write(this.jpeg.subarray(0, 100), () => req.socket.destroy());
        return;
      case 'short-body':
        // Promises more than it sends, then closes, as a server cut off mid-transfer does.
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': this.jpeg.length + 500 });
        res.write(this.jpeg, () => req.socket.end());
        return;
      case 'drip': {
        // A byte at a time, never idle long enough for --timeout, never done.
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': this.jpeg.length });
        let i = 0;
        const timer = setInterval(() => {
          if (i >= this.jpeg.length || res.destroyed) return clearInterval(timer);
          res.write(this.jpeg.subarray(i, ++i));
        }, route.everyMs);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case 'redirect':
        res.writeHead(302, { location: route.to });
        res.end();
        return;
      case 'json':
        res.writeHead(200, { 'content-type': route.contentType ?? 'application/ld+json' });
        res.end(route.body);
        return;
    }
  }

  private imageApiRoute(path: string): Route | undefined {
    const match = this.api && IMAGE_API_REQUEST.exec(path);
    if (!this.api || !match) return undefined;
    const size = match[1] as string;
    const width = size === 'full' || size === 'max' ? this.api.width : /^(\d+),/.exec(size)?.[1];
    if (this.api.maxWidth !== undefined && width !== undefined && Number(width) > this.api.maxWidth) {
      return { kind: 'status', status: this.api.refuse ?? 400, body: 'size above maxWidth' };
    }
    return { kind: 'image' };
  }
}

/** Starts servers on 127.0.0.2, 127.0.0.3, ...; closed when the test file ends. */
export async function imageServers(count: number, firstOctet = 2): Promise<ImageServer[]> {
  const jpeg = await sampleJpeg();
  const servers = await Promise.all(Array.from({ length: count }, (_, i) => new ImageServer(`127.0.0.${firstOctet + i}`, jpeg).listen()));
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  return servers;
}

/** A port on `address` with nothing listening: connections to it are refused (until a server takes it, as a host that comes back). */
export async function refusingPort(address: string): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, address, resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
