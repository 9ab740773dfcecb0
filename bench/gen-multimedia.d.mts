export const HEADER: string;
export function generateMultimedia(
  path: string,
  options: { rows: number; hosts?: number; seed?: number; hostPrefix?: string; shape?: 'herbarium' | 'one-host' },
): Promise<{ rows: number; gbifIds: number }>;
