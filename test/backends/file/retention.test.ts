// Retention by directory scan (src/backends/file/retention.ts): what it counts and what it keeps.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { applyRetention } from '../../../src/backends/file/retention';
import { rotatedName } from '../../../src/backends/file/rotation-names';
import { tempDir } from '../../support/helpers';

const T0 = Date.UTC(2021, 5, 7, 9, 15, 18, 265);
const name = (i: number): string => rotatedName('audit.log', new Date(T0 + i * 1000), 1);

describe('retention', () => {
  it('never counts an empty rotated file: it would push out one that holds records', async () => {
    const dir = tempDir();
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(dir, name(i)), i === 1 || i === 3 ? '' : `{"n":${i}}\n`);
    const deleted = await applyRetention(dir, 'audit.log', { maxRetainedFiles: 2, maxAgeDays: 0 }, new Date(T0));
    expect(deleted).to.deep.equal([]);
    expect(fs.readdirSync(dir).sort()).to.deep.equal([0, 1, 2, 3].map(name));
  });

  it('keeps the file it is told to keep (it holds the committed position), whatever the limits say', async () => {
    const dir = tempDir();
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(dir, name(i)), `{"n":${i}}\n`);
    const deleted = await applyRetention(
      dir,
      'audit.log',
      { maxRetainedFiles: 1, maxAgeDays: 0 },
      new Date(T0),
      name(1),
    );
    expect(deleted).to.deep.equal([name(0), name(2)]);
    expect(fs.readdirSync(dir).sort()).to.deep.equal([name(1), name(3)]);
  });
});
