export interface Cluster {
  readonly url: string;
  stop(): void;
  /** Stops the server, keeping its data: every connection ends (`fast`, the default: an administrator's shutdown; `immediate`: a crash). */
  down(mode?: 'fast' | 'immediate'): void;
  /** Starts it again on the same port. */
  up(): void;
  /** Stops every process of the server (SIGSTOP): connections stay open and nothing answers. */
  freeze(): void;
  /** Lets them go on (SIGCONT). */
  thaw(): void;
}
export function startCluster(settings?: string): Promise<Cluster>;
/** The user the server runs as when the caller is root (postgres or nobody), else undefined. */
export function serverUser(): { uid: number; gid: number } | undefined;
