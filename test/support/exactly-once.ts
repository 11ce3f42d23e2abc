// What the crash tests share: a sidecar config of two backends (one rotating small, one never), the
// events they stream (every 7th invalid) and the check that every valid one is in each backend once.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AuditEvent } from '../../src/events/event';
import { readRecords, resourceEvent } from './helpers';
import { writeSidecarConfig } from './process';

/**
 * The sidecar's config (a small rotating backend that keeps every file, compressed with `compress`, and
 * a second one that never rotates) and a catch-all rules file, in `dir`.
 */
export function writeConfig(dir: string, port: number, maxSizeMb: number, compress?: boolean): string {
  fs.writeFileSync(path.join(dir, 'rules.yaml'), 'type: AccessAudit\nname: all\nrules:\n- accessAll: true\n');
  return writeSidecarConfig(dir, {
    zone: 'crash',
    address: `127.0.0.1:${port}`,
    backends: [
      { folder: 'audit', rotation: { maxSizeMb, maxRetainedFiles: 0, maxAgeDays: 0, compress } },
      { folder: 'audit2', rotation: false },
    ],
  });
}

function countNames(lines: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const l of lines) {
    const name = JSON.parse(l).resource.name as string;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

export function expectExactlyOnce(
  dir: string,
  n: number,
  skippedEvery: number,
  folders: readonly string[] = ['audit', 'audit2'],
): void {
  for (const active of folders.map((f) => `${dir}/${f}/audit.log`)) {
    const counts = countNames(readRecords(active));
    const missing: number[] = [];
    const doubled: number[] = [];
    for (let i = 1; i <= n; i++) {
      const c = counts.get(`route-${i}`) ?? 0;
      const want = i % skippedEvery === 0 ? 0 : 1;
      if (c < want) missing.push(i);
      if (c > want) doubled.push(i);
    }
    expect({ file: active, missing: missing.slice(0, 10), doubled: doubled.slice(0, 10) }).to.deep.equal({
      file: active,
      missing: [],
      doubled: [],
    });
  }
}

/** Every 7th event is invalid: it is acknowledged as rejected and must never be written. */
export function events(n: number, skippedEvery: number): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const e = resourceEvent(i + 1) as AuditEvent;
    return (i + 1) % skippedEvery === 0 ? { ...e, action: 'BOGUS' } : e;
  });
}
