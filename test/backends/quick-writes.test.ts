import { expect } from 'chai';
import { EARN_QUICK_WRITES, QUICK_WRITE_MAX_BYTES, QUICK_WRITE_MS, QuickWrites } from '../../src/backends/quick-writes';

describe('QuickWrites: when a small write goes straight to the kernel', () => {
  /** Tells `n` writes that each took `ms`. */
  const took = (q: QuickWrites, n: number, ms: number): void => {
    for (let i = 0; i < n; i++) q.took(ms);
  };

  it('goes through the thread pool until EARN_QUICK_WRITES writes in a row were quick', () => {
    const q = new QuickWrites(true);
    took(q, EARN_QUICK_WRITES - 1, 0.3);
    expect(q.sync(100)).to.equal(false);
    q.took(QUICK_WRITE_MS); // at the limit still counts as quick
    expect(q.sync(100)).to.equal(true);
  });

  it('writes bigger parts than QUICK_WRITE_MAX_BYTES through the thread pool even once earned', () => {
    const q = new QuickWrites(true);
    took(q, EARN_QUICK_WRITES, 0.3);
    expect(q.sync(QUICK_WRITE_MAX_BYTES)).to.equal(true);
    expect(q.sync(QUICK_WRITE_MAX_BYTES + 1)).to.equal(false);
  });

  it('goes back to the thread pool after one slow write, and earns it back with as many quick ones', () => {
    const q = new QuickWrites(true);
    took(q, EARN_QUICK_WRITES, 0.3);
    q.took(QUICK_WRITE_MS + 0.1);
    expect(q.sync(100)).to.equal(false);
    took(q, EARN_QUICK_WRITES - 1, 0.3);
    q.took(250); // a slow one in the middle starts the count again
    took(q, EARN_QUICK_WRITES - 1, 0.3);
    expect(q.sync(100)).to.equal(false);
    q.took(0.3);
    expect(q.sync(100)).to.equal(true);
  });

  it('counts every write as quick with slowMs Infinity (what tests pass, so that machine load cannot decide)', () => {
    const q = new QuickWrites(true, Infinity);
    took(q, EARN_QUICK_WRITES, 1000);
    expect(q.sync(100)).to.equal(true);
  });

  it('goes back to the thread pool after a failed write, even when no write counts as slow', () => {
    const q = new QuickWrites(true, Infinity);
    took(q, EARN_QUICK_WRITES, 0.3);
    q.failed();
    expect(q.sync(100)).to.equal(false);
  });

  it('write() takes the synchronous way once earned, and counts a write that did not land as a slow one', async () => {
    const q = new QuickWrites(true, Infinity);
    const ways: string[] = [];
    const write = (lands: boolean): Promise<void> =>
      q.write(
        100,
        () => ways.push('sync'),
        async () => ways.push('async'),
        () => {
          if (!lands) throw new Error('short write');
        },
      );
    for (let i = 0; i < EARN_QUICK_WRITES; i++) await write(true);
    await write(true);
    const err = await write(false).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.equal('short write');
    await write(true);
    expect(ways.slice(EARN_QUICK_WRITES)).to.deep.equal(['sync', 'sync', 'async']);
  });

  it('never writes synchronously when disabled (fsync on)', () => {
    const q = new QuickWrites(false);
    took(q, EARN_QUICK_WRITES * 4, 0.01);
    expect(q.sync(1)).to.equal(false);
  });
});
