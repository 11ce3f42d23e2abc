// The benchmark's exactly-once check (bench/check.ts): what it counts as missing, duplicated, unexpected.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { checkExactlyOnce } from '../../bench/check';
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
    const operatorChange = SEED.replace('meshaudit:rules-files', 'mesh-system:admin');
    fs.writeFileSync(path.join(dir, 'audit.log'), record(0, 1) + record(0, 1) + operatorChange);
    const res = checkExactlyOnce(dir, { acked: [2], sent: [2] });
    expect(res).to.include({ ok: false, missing: 1, duplicated: 1, unexpected: 1, ruleChanges: 0 });
  });
});
