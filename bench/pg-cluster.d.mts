export interface Cluster {
  readonly url: string;
  stop(): void;
}
export function startCluster(settings?: string): Promise<Cluster>;
