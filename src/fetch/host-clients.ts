/**
 * The connections of a run: a few undici Clients per origin, each one
 * keep-alive connection, with no pool object in between. undici's Pool keeps
 * a 2,048-slot request queue for each origin, 16 KB whatever it holds: with
 * the few thousand hosts of a GBIF export that alone was 32 MB of a run's
 * heap. The scheduler already caps requests per host (--per-host), so a
 * host needs only that many connections and no queue of its own: a request
 * takes an idle Client, or a new one up to the cap. A Client whose
 * connection closes while idle is dropped, and a host with none left is
 * forgotten, so memory follows the hosts in use, not every host met. Open
 * connections are also capped in all, by what they hold (`maxWeight`): past
 * it the oldest idle one is closed. A TLS connection weighs TLS_WEIGHT plain
 * ones, as it holds about that much more memory, so a run can keep a
 * connection to each of thousands of plain HTTP hosts (each met again every
 * few seconds, saving a connect each time) in the memory a few hundred HTTPS
 * ones take.
 */
import { Client, Dispatcher } from 'undici';

/**
 * What an idle connection is closed with. One error for them all: undici's
 * close() makes a new ClientDestroyedError for every Client and the socket's
 * destroy formats its stack, and over thousands of hosts, where connections
 * come and go all the time, that was about 9% of the main thread's user time. Only an
 * idle Client is closed, so no request ever sees it.
 */
const IDLE_CLOSED = Object.assign(new Error('idle connection closed'), { code: 'HERBDL_IDLE_CLOSED' });

/**
 * What an open HTTPS connection weighs against the cap, in plain ones. Idle
 * in a run, a plain connection held about 9 KB and a TLS one 65 to 95 KB.
 */
export const TLS_WEIGHT = 10;

/** Requests a Client has under way or queued. */
function busy(client: Client): number {
  return client.stats.running + client.stats.pending;
}

export class HostClients extends Dispatcher {
  private readonly byOrigin = new Map<string, Client[]>();
  /** Every open Client, oldest first, with what lets it go. */
  private readonly all = new Map<Client, () => void>();
  /** The open Clients' weight in all. */
  private weight = 0;

  constructor(
    private readonly perOrigin: number,
    private readonly maxWeight: number,
    private readonly options: Client.Options,
  ) {
    super();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(opts.origin);
    let clients = this.byOrigin.get(origin);
    if (!clients) this.byOrigin.set(origin, (clients = []));
    let client = clients.find((c) => busy(c) === 0 && !c.closed && !c.destroyed);
    if (!client && clients.length < this.perOrigin) client = this.open(origin, clients);
    // More requests than connections (never from the scheduler): queue on the least busy.
    client ??= clients.reduce((a, b) => (busy(b) < busy(a) ? b : a));
    return client.dispatch(opts, handler);
  }

  private open(origin: string, clients: Client[]): Client {
    const client = new Client(origin, this.options);
    const weight = origin.startsWith('https:') ? TLS_WEIGHT : 1;
    const drop = () => {
      if (busy(client) > 0) return;
      const at = clients.indexOf(client);
      if (at >= 0) clients.splice(at, 1);
      if (clients.length === 0 && this.byOrigin.get(origin) === clients) this.byOrigin.delete(origin);
      if (this.all.delete(client)) this.weight -= weight;
      if (!client.destroyed) void client.destroy(IDLE_CLOSED).catch(() => undefined);
    };
    client.on('disconnect', drop);
    client.on('connectionError', drop);
    // A caller told to wait (dispatch returned false) waits for this dispatcher's drain.
    const emit = this.emit.bind(this) as (event: string, ...args: unknown[]) => boolean;
    client.on('drain', (origin: URL) => emit('drain', origin, [this]));
    // Room is made before the new one counts, so it is never the one closed.
    while (this.weight + weight > this.maxWeight && this.closeOldestIdle());
    clients.push(client);
    this.all.set(client, drop);
    this.weight += weight;
    return client;
  }

  /** Closes the oldest idle Client; false if none is idle. */
  private closeOldestIdle(): boolean {
    for (const [client, drop] of this.all) {
      if (busy(client) > 0) continue;
      drop();
      return true;
    }
    return false;
  }

  override async close(): Promise<void> {
    await Promise.all(this.forget().map((c) => c.close().catch(() => undefined)));
  }

  override async destroy(): Promise<void> {
    await Promise.all(this.forget().map((c) => c.destroy().catch(() => undefined)));
  }

  /** Lets go of every Client (to be closed or destroyed by the caller). */
  private forget(): Client[] {
    const clients = [...this.all.keys()];
    this.all.clear();
    this.byOrigin.clear();
    this.weight = 0;
    return clients;
  }
}
