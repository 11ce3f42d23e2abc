// The trail follower on real files, with the writer's commits made by the test: races between the
// follower's look at the folder and a rotation, timed through CommittedTrail (the real one, with a hook).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { followTrail, type LineVisitor, TrailGoneError } from '../../../src/backends/file/trail-follower';
import { CommittedTrail, listTrailFiles } from '../../../src/backends/file/trail-reader';
import { rotatedName } from '../../../src/backends/file/rotation-names';
import { digestName, markerName } from '../../../src/integrity/format';
import { tempDir, waitFor } from '../../support/helpers';

/** A CommittedTrail that runs `race` once, the first time a follower asks what retention deleted. */
class RacedTrail extends CommittedTrail {
  race: (() => void) | undefined;

  override deletedBetween(afterMs: number, beforeMs: number): boolean {
    const race = this.race;
    this.race = undefined;
    race?.();
    return super.deletedBetween(afterMs, beforeMs);
  }
}

/** Every line a follower gives, with the file start its cursor names; `flushed`: how many were flushed. */
function collector(): LineVisitor & { lines: Array<[string, number]>; flushed: number } {
  const lines: Array<[string, number]> = [];
  const visitor = {
    lines,
    flushed: 0,
    line: (data: Buffer, start: number, end: number, file: { startMs: number }) => {
      lines.push([data.toString('utf8', start, end), file.startMs]);
      return false;
    },
    flush: async () => {
      visitor.flushed = lines.length;
    },
  };
  return visitor;
}

describe('the trail listing (real files)', () => {
  const [t1, t2, t3] = [10, 11, 12].map((h) => Date.UTC(2026, 11, 7, h, 0, 0));
  const starts = async (active: string): Promise<Array<[string, number]>> =>
    (await listTrailFiles(active)).map((f) => [f.name, f.startMs]);

  it('starts the oldest retained file at the time of the deleted one before it, named by its retention marker or digest', async () => {
    const dir = tempDir();
    const active = path.join(dir, 'audit.log');
    const [n1, n2, n3] = [t1, t2, t3].map((t) => rotatedName('audit.log', new Date(t), 1));
    fs.writeFileSync(active, 'd1\n');
    fs.writeFileSync(path.join(dir, n3), 'c1\n');
    // n1 and n2 deleted by retention: n1's digest and marker stay, n2's marker (its digest gone with a copyTo, say).
    for (const doc of [digestName(n1), markerName(n1), markerName(n2), digestName(n3)])
      fs.writeFileSync(path.join(dir, doc), '{}');
    expect(await starts(active)).to.deep.equal([
      [n3, t2],
      ['audit.log', t3],
    ]);
    // Every rotated file deleted: the active file starts at the last rotation, as it did while it was retained.
    fs.rmSync(path.join(dir, n3));
    fs.writeFileSync(path.join(dir, markerName(n3)), '{}');
    expect(await starts(active)).to.deep.equal([['audit.log', t3]]);
  });

  it('names the lines of a file followed from its very start by the start the listing gives, past a cursor that said 0', async () => {
    const dir = tempDir();
    const active = path.join(dir, 'audit.log');
    const [n1, n2] = [t1, t2].map((t) => rotatedName('audit.log', new Date(t), 1));
    fs.writeFileSync(path.join(dir, n2), 'b1\n');
    fs.writeFileSync(active, 'c1\n');
    fs.writeFileSync(path.join(dir, markerName(n1)), '{}');
    const visitor = collector();
    const trail = new CommittedTrail(active, { ino: fs.statSync(active).ino, size: 3 });
    // A cursor made before the listing knew n1's time (an earlier version, or no marker yet).
    const from = { startMs: 0, offset: 0, hash: '' };
    await followTrail(trail, from, visitor, { follow: false, signal: new AbortController().signal });
    expect(visitor.lines).to.deep.equal([
      ['b1', t1],
      ['c1', t2],
    ]);
  });

  it('starts it at 0 without the signed trail (nothing names the deleted file)', async () => {
    const dir = tempDir();
    const active = path.join(dir, 'audit.log');
    const n3 = rotatedName('audit.log', new Date(t3), 1);
    fs.writeFileSync(active, 'd1\n');
    fs.writeFileSync(path.join(dir, `${n3}.gz`), '');
    expect(await starts(active)).to.deep.equal([
      [`${n3}.gz`, 0],
      ['audit.log', t3],
    ]);
  });
});

describe('trail follower (real files)', () => {
  it('reads the file a rotation renamed between its listing and its stat, and names the new active file by its own start', async () => {
    const dir = tempDir();
    const active = path.join(dir, 'audit.log');
    const t1 = Date.UTC(2026, 11, 7, 10, 0, 0);
    const t2 = Date.UTC(2026, 11, 7, 11, 0, 0);
    fs.writeFileSync(path.join(dir, rotatedName('audit.log', new Date(t1), 1)), 'a1\na2\n');
    fs.writeFileSync(active, 'b1\nb2\n');
    const trail = new RacedTrail(active, { ino: fs.statSync(active).ino, size: 6 });
    // Once the follower has read the first file whole and listed the folder again, the writer rotates:
    // the active file is renamed, a new one begins, and nothing is committed in it yet.
    trail.race = () => {
      fs.renameSync(active, path.join(dir, rotatedName('audit.log', new Date(t2), 1)));
      fs.writeFileSync(active, 'c1\n');
    };
    const visitor = collector();
    const stop = new AbortController();
    const followed = followTrail(trail, undefined, visitor, { follow: true, signal: stop.signal });
    try {
      await waitFor(() => trail.race === undefined, 'the rotation during the listing');
      trail.commit({ ino: fs.statSync(active).ino, size: 3 });
      await waitFor(() => visitor.lines.some(([l]) => l === 'c1'), 'the line committed after the rotation');
    } finally {
      stop.abort();
      await followed;
    }
    expect(visitor.lines).to.deep.equal([
      ['a1', 0],
      ['a2', 0],
      ['b1', t1],
      ['b2', t1],
      ['c1', t2],
    ]);
  });

  it('flushes the lines of the file it read before saying that retention deleted the files after it', async () => {
    const dir = tempDir();
    const active = path.join(dir, 'audit.log');
    const [t1, t2, t3] = [10, 11, 12].map((h) => Date.UTC(2026, 11, 7, h, 0, 0));
    fs.writeFileSync(path.join(dir, rotatedName('audit.log', new Date(t1), 1)), 'a1\na2\n');
    fs.writeFileSync(path.join(dir, rotatedName('audit.log', new Date(t3), 1)), 'c1\n');
    fs.writeFileSync(active, 'd1\n');
    const trail = new CommittedTrail(active, { ino: fs.statSync(active).ino, size: 3 });
    // Retention deleted the file of t2, between the two held, before the follower read it.
    trail.deleted([t2]);
    const visitor = collector();
    const err = await followTrail(trail, undefined, visitor, {
      follow: false,
      signal: new AbortController().signal,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).to.be.instanceOf(TrailGoneError);
    // A Query sends only what is flushed: a1 and a2 are held records, read, and must reach the reader.
    expect(visitor.lines.map(([l]) => l)).to.deep.equal(['a1', 'a2']);
    expect(visitor.flushed, 'lines flushed before the error').to.equal(2);
  });
});
