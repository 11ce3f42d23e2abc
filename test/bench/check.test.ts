// The benchmark's exactly-once check (bench/check.ts): what it counts as missing, duplicated, unexpected.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { checkExactlyOnce, checkRetainedTail } from '../../bench/check';
import { tempDir } from '../support/helpers';

const record = (stream: number, seq: number): string =>
  `{"date":"2024-05-01T10:00:00Z","action":"CREATE","resource":{"name":"res-${stream}-${seq}","type":"Mesh"},"user":{"name":"u","groups":[]}}\n`;
const SEED =
  '{"date":"2024-05-01T10:00:00Z","action":"CREATE","resource":{"name":"all","type":"AccessAudit"},"user":{"name":"meshaudit:rules-files","groups":["meshaudit:system"]}}\n';

describe('bench exactly-once check', () => {
  it("passes every acknowledged event once, with the rules files' own change records beside them", () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'audit.log'), SEED + record(0, 1) + record(0, 2));
    const res = checkExactlyOnce(dir, { acked: [2], sent: [3] });
    expect(res).to.include({ ok: true, lines: 3, ruleChanges: 1, unexpected: 0, missing: 0 });
  });

  it('counts a missing acknowledged event, a duplicate, and a line it does not recognise', () => {
    const dir = tempDir();
    const stranger = '{"date":"2026-12-07T04:00:00Z","action":"CREATE","resource":{"name":"x","type":"Mesh"}}\n';
    fs.writeFileSync(path.join(dir, 'audit.log'), record(0, 1) + record(0, 1) + stranger);
    const res = checkExactlyOnce(dir, { acked: [2], sent: [2] });
    expect(res).to.include({ ok: false, missing: 1, duplicated: 1, unexpected: 1, ruleChanges: 0 });
  });

  it('takes unsure sequences per stream: a failed call of one stream excuses no other stream', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'audit.log'), record(0, 1) + record(1, 1));
    const res = checkExactlyOnce(dir, { acked: [2, 2], sent: [2, 2], unsure: [undefined, [2]] });
    expect(res).to.include({ ok: false, missing: 1 });
    expect(res.examples).to.deep.equal(['stream 0 seq 2: acknowledged, no record']);
  });

  it('expects answered API changes once and failed ones at most once, and no change never made', () => {
    const dir = tempDir();
    const change = (action: string, name: string): string =>
      `{"date":"2026-12-07T04:00:00Z","action":"${action}","resource":{"name":"${name}","type":"AccessAudit"},"user":{"name":"mesh-system:admin","groups":["mesh-system:admin"]}}\n`;
    fs.writeFileSync(
      path.join(dir, 'audit.log'),
      record(0, 1) + change('CREATE', 'r1') + change('UPDATE', 'r1') + change('CREATE', 'r2'),
    );
    const ok = checkExactlyOnce(dir, {
      acked: [1],
      sent: [1],
      apiChanges: { answered: ['CREATE r1', 'UPDATE r1'], failed: ['CREATE r2', 'CREATE r3'] },
    });
    expect(ok).to.include({ ok: true, apiChanges: 3, lines: 4 });
    fs.appendFileSync(path.join(dir, 'audit.log'), change('UPDATE', 'r1') + change('DELETE', 'r9'));
    const bad = checkExactlyOnce(dir, {
      acked: [1],
      sent: [1],
      apiChanges: { answered: ['CREATE r1', 'UPDATE r1', 'DELETE r1'], failed: [] },
    });
    expect(bad).to.include({ ok: false, missing: 1, duplicated: 1, unexpected: 2 });
  });
});

describe('bench retention check', () => {
  /** A backend folder: rotated files (oldest first, named by minute) and the active file. */
  function backend(rotated: string[], active: string): string {
    const dir = tempDir();
    rotated.forEach((text, i) => {
      fs.writeFileSync(path.join(dir, `audit-2026-12-07T04-0${i}-00.000.log`), text);
    });
    fs.writeFileSync(path.join(dir, 'audit.log'), active);
    return dir;
  }
  const lines = (from: number, to: number): string =>
    Array.from({ length: to - from + 1 }, (_, i) => record(0, from + i)).join('');

  it('passes a tight backend that holds exactly the end of the full one, maxRetainedFiles rotated files', () => {
    const full = backend([lines(1, 4), lines(5, 8)], lines(9, 10));
    const tight = backend([lines(5, 6), lines(7, 8)], lines(9, 10));
    expect(checkRetainedTail(full, tight, 2)).to.include({ ok: true, rotatedKept: 2, emptyRotated: 0 });
  });

  it("fails a lost file retention should keep, a file too many, and a tail that is not the full backend's", () => {
    const full = backend([lines(1, 4), lines(5, 8)], lines(9, 10));
    expect(checkRetainedTail(full, backend([lines(7, 8)], lines(9, 10)), 2).examples).to.deep.equal([
      '1 rotated files kept, fewer than maxRetainedFiles 2',
    ]);
    expect(checkRetainedTail(full, backend([lines(5, 6), lines(7, 7), lines(8, 8)], lines(9, 10)), 2).ok).to.equal(
      false,
    );
    const gap = checkRetainedTail(full, backend([lines(5, 6), lines(8, 8)], lines(9, 10)), 2);
    expect(gap.examples[0]).to.match(/are not the end of the full backend's/);
  });

  it('passes a tight backend that never deleted anything with fewer rotated files', () => {
    const full = backend([lines(1, 4)], lines(5, 6));
    expect(checkRetainedTail(full, backend([lines(1, 4)], lines(5, 6)), 3)).to.include({ ok: true, rotatedKept: 1 });
  });
});
