// Whether a small write goes straight to the kernel, on the event loop, or through libuv's thread pool.
//
// A write through the thread pool costs the event loop ~25-30 µs of CPU on this kind of machine
// whatever its size (the hand-off to a libuv thread and the wake-up back), and its answer waits for
// the loop to come round: ~0.5 ms under load. A `Record` call's group of a few KiB costs a few
// microseconds to copy into the page cache. So small writes are made synchronously, but only while
// the disk has shown it is quick: a synchronous write holds the whole event loop (health, metrics,
// the other streams) for as long as the kernel takes, and a disk that stalls (writeback throttling,
// a failing device, a network mount) would stall everything.
//
// The rule: writes go through the thread pool until EARN_QUICK_WRITES of them in a row each answered
// within QUICK_WRITE_MS; then writes of at most QUICK_WRITE_MAX_BYTES go synchronously, until one
// write (of either kind) takes longer than QUICK_WRITE_MS: the next ones go through the thread pool
// again and have to earn it back. A disk that is slow from the start is never written synchronously;
// one that turns slow holds the loop for one write. With fsync on, every write goes through the
// thread pool (an fdatasync takes milliseconds: the hand-off is no longer the cost). A write that fails or
// lands short counts as a slow one: a disk that fails after a stall is not written synchronously again
// at the retry.
import { performance } from 'node:perf_hooks';

/** The largest write made synchronously: bigger groups (a busy stream's) amortise the hand-off. */
export const QUICK_WRITE_MAX_BYTES = 64 * 1024;
/** Writes in a row that each answered within QUICK_WRITE_MS before writes go synchronously. */
export const EARN_QUICK_WRITES = 16;
/** A write that takes longer (from its start to its answer) shows a slow disk. */
export const QUICK_WRITE_MS = 5;

export class QuickWrites {
  private quickInARow = 0;

  /**
   * @param enabled false (fsync on): every write goes through the thread pool.
   * @param slowMs a write that takes longer shows a slow disk (QUICK_WRITE_MS; tests pass Infinity, so
   *   that a loaded machine cannot change which writes are quick).
   */
  constructor(
    private readonly enabled: boolean,
    private readonly slowMs = QUICK_WRITE_MS,
  ) {}

  /**
   * One write of `bytes`: `syncWrite` when it goes synchronously now, else `asyncWrite`; then `landed`,
   * which throws when it did not land whole. The write's time (not `landed`'s) counts toward earning
   * quick writes; a throw from any of the three counts as a slow write, and is rethrown.
   */
  async write(
    bytes: number,
    syncWrite: () => unknown,
    asyncWrite: () => Promise<unknown>,
    landed: () => void | Promise<void>,
  ): Promise<void> {
    const began = performance.now();
    try {
      if (this.sync(bytes)) syncWrite();
      else await asyncWrite();
      const ms = performance.now() - began;
      await landed();
      this.took(ms);
    } catch (err) {
      this.failed();
      throw err;
    }
  }

  /** Whether a write of `bytes` is made synchronously now. */
  sync(bytes: number): boolean {
    return this.enabled && bytes <= QUICK_WRITE_MAX_BYTES && this.quickInARow >= EARN_QUICK_WRITES;
  }

  /** Tells how long a write took, from its start to its answer (synchronous or not). */
  took(ms: number): void {
    if (ms > this.slowMs) this.quickInARow = 0;
    else if (this.quickInARow < EARN_QUICK_WRITES) this.quickInARow++;
  }

  /** Tells that a write failed or landed short: as a slow one, the disk must earn quick writes again. */
  failed(): void {
    this.quickInARow = 0;
  }
}
