import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { RotationConfig } from '../../../src/config/types';
import { applyRetention, type Doomed, FileSink, type FileSinkEvent } from '../../../src/backends/file';
import { readRecords } from '../../support/helpers';

const T0 = Date.UTC(2021, 5, 7, 9, 15, 18, 265);
const FIRST = 'audit-2021-06-07T09-15-18.265.log';
const SECOND = 'audit-2021-06-07T09-15-18.266.log';

function rotation(over: Partial<RotationConfig> = {}): RotationConfig {
  return { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 40, maxAgeDays: 0, compress: true, ...over };
}

/** Records of 20 bytes: two fill a file of maxSizeBytes 40. */
function records(from: number, count: number): Buffer {
  let s = '';
  for (let i = from; i < from + count; i++) s += `{"n":"${String(i).padStart(11, '0')}"}\n`;
  return Buffer.from(s);
}

describe('FileSink rotation.compress', () => {
  let dir: string;
  let active: string;
  let events: FileSinkEvent[];
  const open: FileSink[] = [];

  function sink(over: Partial<RotationConfig> = {}, doomed?: Doomed[]): FileSink {
    const s = new FileSink({
      path: active,
      rotation: rotation(over),
      now: () => new Date(T0),
      onEvent: (e) => events.push(e),
      beforeRetentionDelete: doomed === undefined ? undefined : async (d) => void doomed.push(...d),
    });
    open.push(s);
    return s;
  }

  function names(): string[] {
    return fs.readdirSync(dir).sort();
  }

  function numbers(): number[] {
    return readRecords(active).map((l) => Number(JSON.parse(l).n));
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-compress-'));
    active = path.join(dir, 'audit.log');
    events = [];
  });

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gzips a rotated file to <name>.gz holding the same bytes, with the file mode, and removes the plain one', async () => {
    const s = sink();
    await s.open();
    await s.write(records(1, 3)); // 1, 2 rotate to FIRST; 3 in the active file
    const plain = fs.readFileSync(path.join(dir, FIRST));
    await s.compressRotated(path.join(dir, FIRST));
    expect(names()).to.deep.equal([`${FIRST}.gz`, 'audit.log']);
    expect(zlib.gunzipSync(fs.readFileSync(path.join(dir, `${FIRST}.gz`)))).to.deep.equal(plain);
    expect(fs.statSync(path.join(dir, `${FIRST}.gz`)).mode & 0o777).to.equal(0o640);
    expect(numbers()).to.deep.equal([1, 2, 3]);
    expect(events).to.deep.include({
      type: 'compressed',
      file: active,
      rotatedFile: path.join(dir, FIRST),
      compressedFile: path.join(dir, `${FIRST}.gz`),
    });
  });

  it('leaves alone a file already compressed, and one retention deleted', async () => {
    const s = sink();
    await s.open();
    await s.write(records(1, 3));
    await Promise.all([s.compressRotated(path.join(dir, FIRST)), s.compressRotated(path.join(dir, FIRST))]);
    await s.compressRotated(path.join(dir, SECOND)); // never rotated
    expect(names()).to.deep.equal([`${FIRST}.gz`, 'audit.log']);
    expect(events.filter((e) => e.type !== 'rotated').map((e) => e.type)).to.deep.equal(['compressed']);
  });

  it('counts a rotated file and its .gz as one for retention, and deletes whichever is there', async () => {
    const doomed: Doomed[] = [];
    const s = sink({ maxRetainedFiles: 1 }, doomed);
    await s.open();
    await s.write(records(1, 3)); // FIRST
    await s.compressRotated(path.join(dir, FIRST));
    await s.write(records(4, 1)); // 3, 4 in the active file: no rotation
    expect(names()).to.deep.equal([`${FIRST}.gz`, 'audit.log']);
    await s.write(records(5, 1)); // rotates SECOND: FIRST.gz is one too many
    expect(names()).to.deep.equal([SECOND, 'audit.log']);
    expect(doomed).to.deep.equal([{ name: FIRST, reason: 'maxRetainedFiles: 1' }]);
    expect(numbers()).to.deep.equal([3, 4, 5]);
  });

  it('deletes a file and its .gz together when a crash left both, naming it once to the trail', async () => {
    fs.writeFileSync(path.join(dir, FIRST), records(1, 2));
    fs.writeFileSync(path.join(dir, `${FIRST}.gz`), zlib.gzipSync(records(1, 2)));
    fs.writeFileSync(path.join(dir, SECOND), records(3, 2));
    const doomed: Doomed[] = [];
    const deleted = await applyRetention(
      dir,
      'audit.log',
      { maxRetainedFiles: 1, maxAgeDays: 0 },
      new Date(T0),
      undefined,
      async (d) => void doomed.push(...d),
    );
    expect(deleted.sort()).to.deep.equal([FIRST, `${FIRST}.gz`]);
    expect(doomed).to.deep.equal([{ name: FIRST, reason: 'maxRetainedFiles: 1' }]);
    expect(names()).to.deep.equal([SECOND]);
  });

  describe('a crash during compression, repaired at open: each file counted exactly once', () => {
    /** FIRST rotated (1, 2) and the active file (3), as a sink leaves them; then `crashAt` by hand. */
    async function crashedFolder(crashAt: (plain: string, gz: string) => void): Promise<void> {
      const s = new FileSink({ path: active, rotation: rotation(), now: () => new Date(T0) });
      await s.open();
      await s.write(records(1, 3));
      await s.close();
      crashAt(path.join(dir, FIRST), path.join(dir, `${FIRST}.gz`));
    }

    it('removes a .gz.tmp (killed while gzipping) and keeps the plain file', async () => {
      await crashedFolder((plain) => fs.writeFileSync(`${plain}.gz.tmp`, zlib.gzipSync(records(1, 2)).subarray(0, 10)));
      await sink().open();
      expect(names()).to.deep.equal([FIRST, 'audit.log']);
      expect(numbers()).to.deep.equal([1, 2, 3]);
      expect(events).to.deep.include({
        type: 'compression-repaired',
        file: active,
        removed: path.join(dir, `${FIRST}.gz.tmp`),
        reason: 'a compression cut short',
      });
    });

    it('removes the plain file beside a whole .gz of it (killed between the rename and the unlink)', async () => {
      await crashedFolder((plain, gz) => fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(plain))));
      await sink().open();
      expect(names()).to.deep.equal([`${FIRST}.gz`, 'audit.log']);
      expect(numbers()).to.deep.equal([1, 2, 3]);
    });

    it('removes a .gz that does not gunzip whole and keeps the plain file', async () => {
      await crashedFolder((plain, gz) => fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(plain)).subarray(0, 15)));
      await sink().open();
      expect(names()).to.deep.equal([FIRST, 'audit.log']);
      expect(numbers()).to.deep.equal([1, 2, 3]);
    });

    it('keeps a whole .gz whose plain file is gone (the unlink happened)', async () => {
      await crashedFolder((plain, gz) => {
        fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(plain)));
        fs.unlinkSync(plain);
      });
      const s = sink();
      await s.open();
      expect(names()).to.deep.equal([`${FIRST}.gz`, 'audit.log']);
      expect(await s.plainRotatedFiles()).to.deep.equal([]);
      expect(numbers()).to.deep.equal([1, 2, 3]);
    });
  });
});
