import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, CHECKPOINT_FILE } from '../src/store/checkpoint';
import { tempDir } from './helpers';

function commit(
  cp: Checkpoint,
  seqs: Record<string, number>,
  pos: Record<string, [number, number]> = {},
): Promise<void> {
  return cp.commit({
    seqs: new Map(Object.entries(seqs)),
    positions: new Map(Object.entries(pos).map(([k, [ino, size]]) => [k, { ino, size }])),
  });
}

describe('checkpoint', () => {
  it('replays committed deltas after a restart', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir);
    cp.load();
    await commit(cp, { 'z/a': 100 }, { '/x/audit.log': [11, 500] });
    await commit(cp, { 'z/b': 7 });
    await commit(cp, { 'z/a': 200 }, { '/x/audit.log': [12, 0] });
    cp.close();
    const { state, droppedTail } = new Checkpoint(dir).load();
    expect(droppedTail).to.equal(false);
    expect([...state.seqs]).to.deep.equal([
      ['z/a', 200],
      ['z/b', 7],
    ]);
    expect(state.positions.get('/x/audit.log')).to.deep.equal({ ino: 12, size: 0 });
  });

  it('drops a torn last line and cuts it from the file', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir);
    cp.load();
    await commit(cp, { 'z/a': 5 });
    cp.close();
    fs.appendFileSync(path.join(dir, CHECKPOINT_FILE), '{"s":{"z/a":9');
    const again = new Checkpoint(dir);
    const { state, droppedTail } = again.load();
    expect(droppedTail).to.equal(true);
    expect(state.seqs.get('z/a')).to.equal(5);
    await commit(again, { 'z/a': 6 });
    again.close();
    expect(new Checkpoint(dir).load().state.seqs.get('z/a')).to.equal(6);
  });

  it('refuses a file damaged in the middle instead of guessing', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), '{"s":{"z/a":1},"p":{}}\ngarbage\n{"s":{"z/a":2},"p":{}}\n');
    expect(() => new Checkpoint(dir).load()).to.throw(/is corrupt at byte 23; move it away to start over/);
  });

  it('compacts into one line holding the whole state', async () => {
    const dir = tempDir();
    const cp = new Checkpoint(dir, { fsync: false, compactAtBytes: 200 });
    cp.load();
    for (let i = 1; i <= 50; i++) await commit(cp, { [`z/i${i % 5}`]: i }, { '/a.log': [1, i * 10] });
    cp.close();
    const text = fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8');
    expect(text.length).to.be.below(600);
    const { state } = new Checkpoint(dir).load();
    expect(state.seqs.get('z/i0')).to.equal(50);
    expect(state.seqs.get('z/i4')).to.equal(49);
    expect(state.positions.get('/a.log')).to.deep.equal({ ino: 1, size: 500 });
  });
});
