import { expect } from 'chai';
import { Backlog } from '../../src/pipeline/backlog';

describe('Backlog', () => {
  it('is full at its high-water mark, says drain once below it, and idle at zero', async () => {
    const b = new Backlog(10);
    const events: string[] = [];
    b.on('drain', () => events.push('drain'));
    b.on('idle', () => events.push('idle'));
    b.add(6);
    b.add(6);
    expect([b.size, b.isFull]).to.deep.equal([12, true]);
    const idle = b.idle();
    b.remove(1); // still full
    b.remove(5); // below the mark
    expect([b.isFull, events]).to.deep.equal([false, ['drain']]);
    b.remove(6);
    await idle;
    expect(events).to.deep.equal(['drain', 'idle']);
  });

  it('is never full without a mark, and idle at once when empty', async () => {
    const b = new Backlog();
    b.add(1e9);
    expect(b.isFull).to.equal(false);
    b.remove(1e9);
    await b.idle();
  });
});
