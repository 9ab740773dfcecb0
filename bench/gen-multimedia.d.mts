export const HEADER: string;
export function generateMultimedia(
  path: string,
  options: { rows: number; hosts?: number; seed?: number; hostPrefix?: string; shape?: 'herbarium' | 'one-host' },
): Promise<{ rows: number; gbifIds: number }>;
/** A seeded generator of numbers in [0, 1): the same sequence for the same seed. */
export function rng(seed: number): () => number;
/** The herbarium-shaped file of `rows` rows in `dir`, generated once and kept. */
export function herbariumFile(dir: string, rows: number): Promise<string>;
/** A newer export of the same query as `older`: gbifIDs gone, URLs moved, images and gbifIDs added; what changed. */
export function newerExport(
  older: string,
  path: string,
  options?: { seed?: number },
): Promise<{ rows: number; goneIds: number; movedImages: number; addedImages: number; newIds: number }>;
