/**
 * The connections of a run: a few undici Clients per origin, each one
 * keep-alive connection, with no pool object in between. undici's Pool keeps
 * a 2,048-slot request queue for each origin, 16 KB whatever it holds: with
 * the few thousand hosts of a GBIF export that alone was 32 MB of a run's
 * heap. The scheduler already caps requests per host (--per-host), so a
 * host needs only that many connections and no queue of its own: a request
 * takes an idle Client, or a new one up to the cap. A Client whose
 * connection closes while idle is dropped, and a host with none left is
 * forgotten, so memory follows the hosts in use, not every host met. Idle
 * connections are also capped in all (`maxOpen`): past it the oldest idle
 * one is closed, so a run over thousands of hosts that each see a request
 * every few seconds does not keep thousands of sockets open for nothing.
 */
import { Client, Dispatcher } from 'undici';

export class HostClients extends Dispatcher {
  private readonly byOrigin = new Map<string, Client[]>();
  /** Every open Client, oldest first. */
  private readonly all = new Set<Client>();
  private closed = false;

  constructor(
    private readonly perOrigin: number,
    private readonly maxOpen: number,
    private readonly options: Client.Options,
  ) {
    super();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(opts.origin);
    let clients = this.byOrigin.get(origin);
    if (!clients) this.byOrigin.set(origin, (clients = []));
    const busy = (c: Client) => c.stats.running + c.stats.pending;
    let client = clients.find((c) => busy(c) === 0 && !c.closed && !c.destroyed);
    if (!client && clients.length < this.perOrigin) client = this.open(origin, clients);
    // More requests than connections (never from the scheduler): queue on the least busy.
    client ??= clients.reduce((a, b) => (busy(b) < busy(a) ? b : a));
    return client.dispatch(opts, handler);
  }

  private open(origin: string, clients: Client[]): Client {
    const client = new Client(origin, this.options);
    const drop = () => {
      if (client.stats.running + client.stats.pending > 0) return;
      const at = clients.indexOf(client);
      if (at >= 0) clients.splice(at, 1);
      if (clients.length === 0 && this.byOrigin.get(origin) === clients) this.byOrigin.delete(origin);
      this.all.delete(client);
      void client.close().catch(() => undefined);
    };
    (client as unknown as { drop: () => void }).drop = drop;
    client.on('disconnect', drop);
    client.on('connectionError', drop);
    this.all.add(client);
    if (this.all.size > this.maxOpen) this.closeOldestIdle();
    // A caller told to wait (dispatch returned false) waits for this dispatcher's drain.
    const emit = this.emit.bind(this) as (event: string, ...args: unknown[]) => boolean;
    client.on('drain', (origin: URL) => emit('drain', origin, [this]));
    clients.push(client);
    return client;
  }

  private closeOldestIdle(): void {
    for (const client of this.all) {
      if (client.stats.running + client.stats.pending > 0) continue;
      (client as unknown as { drop: () => void }).drop();
      return;
    }
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.byOrigin.values()].flat().map((c) => c.close().catch(() => undefined)));
    this.byOrigin.clear();
  }

  override async destroy(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.byOrigin.values()].flat().map((c) => c.destroy().catch(() => undefined)));
    this.byOrigin.clear();
  }
}
