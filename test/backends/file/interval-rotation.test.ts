import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RotationConfig } from '../../../src/config/types';
import { FileSink, timeFromName } from '../../../src/backends/file';

const HOUR_MS = 60 * 60 * 1000;
/** 09:15 UTC: the next 1h boundary is 10:00, the next 24h boundary midnight. */
const T0 = Date.UTC(2021, 5, 7, 9, 15, 0, 0);

function rotation(over: Partial<RotationConfig> = {}): RotationConfig {
  return { enabled: true, maxRetainedFiles: 0, maxSizeBytes: 1024 * 1024, maxAgeDays: 0, intervalMs: HOUR_MS, ...over };
}

function record(n: number): Buffer {
  return Buffer.from(`{"n":${n}}\n`);
}

describe('FileSink rotation.interval', () => {
  let dir: string;
  let active: string;
  let nowMs: number;
  const open: FileSink[] = [];

  function sink(over: Partial<RotationConfig> = {}): FileSink {
    const s = new FileSink({ path: active, rotation: rotation(over), now: () => new Date(nowMs) });
    open.push(s);
    return s;
  }

  /** Each file of the backend, oldest first, with what it holds. */
  function files(): Array<[string, string]> {
    const rotated = fs
      .readdirSync(dir)
      .filter((n) => timeFromName('audit.log', n) !== undefined)
      .sort();
    return [...rotated, 'audit.log'].map((n) => [n, fs.readFileSync(path.join(dir, n), 'utf8')]);
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshaudit-interval-'));
    active = path.join(dir, 'audit.log');
    nowMs = T0;
  });

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('rotates a small file before the first write after a UTC boundary, to a name after the boundary', async () => {
    const s = sink();
    await s.open();
    await s.write(record(1));
    nowMs = Date.UTC(2021, 5, 7, 9, 59, 59, 999);
    await s.write(record(2));
    nowMs = Date.UTC(2021, 5, 7, 10, 0, 0, 5);
    await s.write(record(3));
    expect(files()).to.deep.equal([
      ['audit-2021-06-07T10-00-00.005.log', '{"n":1}\n{"n":2}\n'],
      ['audit.log', '{"n":3}\n'],
    ]);
  });

  it('rotates once per boundary passed however long the gap, and never an empty file', async () => {
    const s = sink();
    await s.open();
    nowMs += 5 * HOUR_MS; // no record yet: nothing to rotate
    await s.write(record(1));
    nowMs += 30 * 60 * 1000; // 14:45, same hour
    await s.write(record(2));
    nowMs += 3 * HOUR_MS;
    await s.write(record(3));
    expect(files()).to.deep.equal([
      ['audit-2021-06-07T17-45-00.000.log', '{"n":1}\n{"n":2}\n'],
      ['audit.log', '{"n":3}\n'],
    ]);
  });

  it('rotates by size and by time together', async () => {
    const s = sink({ maxSizeBytes: 16, intervalMs: 24 * HOUR_MS });
    await s.open();
    await s.write(Buffer.concat([record(1), record(2), record(3)])); // 8 bytes each: two per file
    nowMs += 1;
    await s.write(record(4)); // fits beside 3, same day
    nowMs = Date.UTC(2021, 5, 8, 0, 0, 0, 1);
    await s.write(record(5)); // a new UTC day
    expect(files().map(([, text]) => text)).to.deep.equal(['{"n":1}\n{"n":2}\n', '{"n":3}\n{"n":4}\n', '{"n":5}\n']);
    expect(files()[1][0]).to.equal('audit-2021-06-08T00-00-00.001.log');
  });

  it('rotates at the first write after a restart a file last written before the boundary', async () => {
    fs.writeFileSync(active, record(1));
    const lastWrite = new Date(Date.UTC(2021, 5, 7, 8, 59, 0, 0));
    fs.utimesSync(active, lastWrite, lastWrite);
    const s = sink();
    await s.open();
    await s.write(record(2));
    expect(files()).to.deep.equal([
      ['audit-2021-06-07T09-15-00.000.log', '{"n":1}\n'],
      ['audit.log', '{"n":2}\n'],
    ]);
  });

  it('goes on in a file last written in the same period after a restart', async () => {
    fs.writeFileSync(active, record(1));
    const lastWrite = new Date(Date.UTC(2021, 5, 7, 9, 1, 0, 0));
    fs.utimesSync(active, lastWrite, lastWrite);
    const s = sink();
    await s.open();
    await s.write(record(2));
    expect(files()).to.deep.equal([['audit.log', '{"n":1}\n{"n":2}\n']]);
  });

  it('does not rotate when the clock steps back across a boundary', async () => {
    const s = sink();
    await s.open();
    await s.write(record(1));
    nowMs -= HOUR_MS;
    await s.write(record(2));
    expect(files()).to.deep.equal([['audit.log', '{"n":1}\n{"n":2}\n']]);
  });

  it('takes an interval set by a reload from the next write', async () => {
    const s = sink({ intervalMs: undefined });
    await s.open();
    await s.write(record(1));
    nowMs += HOUR_MS;
    await s.write(record(2));
    expect(files()).to.have.length(1);
    await s.setRotation(rotation());
    nowMs += HOUR_MS;
    await s.write(record(3));
    expect(files().map(([, text]) => text)).to.deep.equal(['{"n":1}\n{"n":2}\n', '{"n":3}\n']);
  });

  it('never rotates with rotation disabled, interval or not', async () => {
    const s = sink({ enabled: false });
    await s.open();
    await s.write(record(1));
    nowMs += 2 * HOUR_MS;
    await s.write(record(2));
    expect(files()).to.have.length(1);
  });
});
