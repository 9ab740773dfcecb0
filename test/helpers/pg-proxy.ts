/**
 * A loopback TCP proxy in front of a PostgreSQL server that loses a COMMIT's
 * answer: the server gets the COMMIT and commits, and the proxy ends the
 * connection instead of passing the answer on, as a network that fails at
 * that moment (or a server that crashes just after its commit reached the
 * disk) does. Or it loses the COMMIT itself, which the client cannot tell
 * apart: the connection ends before the server has it. A statement sent
 * outside a transaction commits on its own, at the Sync that ends it: its
 * answer (or that Sync) is lost the same way. It reads the client's side of
 * the protocol only as far as telling messages apart: a transaction's
 * statements from its BEGIN to its COMMIT, whichever protocol sent them
 * (Parse for statements with values, Query for plain text).
 *
 * Or (`lose: 'crash'`) it keeps the COMMIT and holds the server's side of
 * the connection open, its transaction open with it, while the client's ends
 * and new connections are refused: as when the server crashes with the
 * COMMIT on the wire. The test then crashes the server, and lets
 * connections through again (`refusing = false`) when it is ready.
 */
import { createServer, connect, type Socket } from 'node:net';

export interface CommitDropper {
  /** The server's URL with the proxy's address. */
  readonly url: string;
  /** COMMITs (or their answers, as asked) the proxy did not pass on. */
  dropped: number;
  /** New connections are ended at once (after a 'crash' drop, until the test sets it false). */
  refusing: boolean;
  close(): Promise<void>;
}

/** ReadyForQuery with the status idle: no transaction open, what came before committed. */
const READY_IDLE = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);

/** Untyped messages a client may send before its startup message: SSLRequest, GSSENCRequest. */
const NEGOTIATIONS = new Set([80877103, 80877104]);

/**
 * Drops the answer of the first `times` COMMITs whose transaction holds a
 * statement that `matches`, or of statements that match sent outside a
 * transaction (`lose: 'commit'`: the COMMIT or Sync itself); every other byte
 * passes both ways unchanged.
 */
export async function dropCommitAnswers(serverUrl: string, matches: RegExp, times = 1, lose: 'answer' | 'commit' | 'crash' = 'answer'): Promise<CommitDropper> {
  const target = new URL(serverUrl);
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    if (dropper.refusing) {
      client.destroy();
      return;
    }
    const server = connect(Number(target.port), target.hostname);
    sockets.add(client).add(server);
    /** Set by a 'crash' drop: the server's side stays open until the server itself goes. */
    let serverKept = false;
    const end = () => {
      client.destroy();
      if (!serverKept) server.destroy();
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    let pending = Buffer.alloc(0);
    let typed = false;
    let statements: string[] = [];
    let inTransaction = false;
    /** A matching statement sent outside a transaction: it commits at the next Sync. */
    let autocommit = false;
    let armed = false;
    let held = Buffer.alloc(0);
    const lost = (): boolean => {
      if (lose === 'answer') {
        armed = true;
        return false;
      }
      dropper.dropped++;
      if (lose === 'crash') {
        serverKept = true;
        dropper.refusing = true;
      }
      end();
      return true;
    };
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // Whole messages are passed on one at a time (a COMMIT may have to stay here); a part waits for its rest.
      for (;;) {
        const head = typed ? 1 : 0;
        if (pending.length < head + 4) break;
        const length = pending.readInt32BE(head);
        if (pending.length < head + length) break;
        const message = pending.subarray(0, head + length);
        const body = message.subarray(head + 4);
        pending = pending.subarray(head + length);
        if (!typed) {
          typed = !NEGOTIATIONS.has(body.readInt32BE(0));
        } else if (message[0] === 0x50 /* Parse: name, then the statement */) {
          const from = body.indexOf(0) + 1;
          const text = body.subarray(from, body.indexOf(0, from)).toString();
          if (inTransaction) statements.push(text);
          else if (dropper.dropped < times && matches.test(text)) autocommit = true;
        } else if (message[0] === 0x53 /* Sync */ && autocommit) {
          autocommit = false;
          if (lost()) return;
        } else if (message[0] === 0x51 /* Query: the statement */) {
          const text = body.subarray(0, body.length - 1).toString().trim();
          if (/^BEGIN/i.test(text)) {
            statements = [];
            inTransaction = true;
          } else if (/^(COMMIT|ROLLBACK)/i.test(text)) {
            inTransaction = false;
            const commit = /^COMMIT/i.test(text) && dropper.dropped < times && statements.some((s) => matches.test(s));
            statements = [];
            if (commit && lost()) return;
          } else statements.push(text);
        }
        server.write(message);
      }
    });
    server.on('data', (chunk: Buffer) => {
      // Nothing is sent before the answer to the COMMIT: the client waits for each answer before its next statement.
      if (armed) {
        // Held back until the server is ready for the next statement, idle: it has committed (a large answer may come in parts before).
        held = Buffer.concat([held, chunk]);
        if (held.includes(READY_IDLE)) {
          dropper.dropped++;
          end();
        }
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const url = new URL(serverUrl);
  url.hostname = '127.0.0.1';
  url.port = String((proxy.address() as { port: number }).port);
  const dropper: CommitDropper = {
    url: url.toString(),
    dropped: 0,
    refusing: false,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        proxy.close(() => resolve());
      }),
  };
  return dropper;
}
