// Strings for the recurring short values of events (resource types, meshes, dates), made from their
// bytes without decoding each time: a direct-mapped cache keyed by a hash of the bytes and checked
// byte for byte. A control plane's events name a handful of types and meshes over and over.

const SLOTS = 512; // a power of two

export class AsciiCache {
  private readonly keys: Array<Uint8Array | undefined> = new Array(SLOTS);
  private readonly values: string[] = new Array(SLOTS);

  /** src[start, end) as a Latin-1 string (the same as UTF-8 for ASCII, which is all callers rely on). */
  get(src: Buffer, start: number, end: number): string {
    let hash = 0x811c9dc5; // FNV-1a
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ src[i], 0x01000193);
    const slot = (hash >>> 0) & (SLOTS - 1);
    const key = this.keys[slot];
    if (key !== undefined && equalBytes(key, src, start, end)) return this.values[slot];
    const value = src.toString('latin1', start, end);
    this.keys[slot] = src.slice(start, end).map((b) => b); // a copy: src is reused
    this.values[slot] = value;
    return value;
  }
}

function equalBytes(key: Uint8Array, src: Uint8Array, start: number, end: number): boolean {
  if (key.length !== end - start) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== src[start + i]) return false;
  return true;
}
