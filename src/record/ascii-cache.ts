// Strings for the recurring short values of events (resource types, meshes, dates), made from their
// bytes without decoding each time: a two-way set-associative cache keyed by a hash of the bytes and
// checked byte for byte. A control plane's events name a handful of types and meshes over and over;
// two ways per set keep two hot values whose hashes collide from evicting each other on every event.

const SETS = 1024; // a power of two

export class AsciiCache {
  private readonly keys: Array<Uint8Array | undefined> = new Array(2 * SETS);
  private readonly values: string[] = new Array(2 * SETS);
  /** Per set, the way to replace next: the one not used last. */
  private readonly victim = new Uint8Array(SETS);

  /** src[start, end) as a Latin-1 string (the same as UTF-8 for ASCII, which is all callers rely on). */
  get(src: Buffer, start: number, end: number): string {
    let hash = 0x811c9dc5; // FNV-1a
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ src[i], 0x01000193);
    const set = (hash >>> 0) & (SETS - 1);
    for (let way = 0; way < 2; way++) {
      const key = this.keys[2 * set + way];
      if (key !== undefined && equalBytes(key, src, start, end)) {
        this.victim[set] = 1 - way;
        return this.values[2 * set + way];
      }
    }
    const way = this.victim[set];
    const value = src.toString('latin1', start, end);
    this.keys[2 * set + way] = new Uint8Array(src.subarray(start, end)); // a copy: src is reused
    this.values[2 * set + way] = value;
    this.victim[set] = 1 - way;
    return value;
  }
}

function equalBytes(key: Uint8Array, src: Uint8Array, start: number, end: number): boolean {
  if (key.length !== end - start) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== src[start + i]) return false;
  return true;
}
