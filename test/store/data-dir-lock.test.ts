import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { DataDirLock, LOCK_FILE, lockDataDir, STALE_AFTER_MS } from '../../src/store/data-dir-lock';
import { tempDir } from '../support/helpers';

/** A pid that is certainly not running: a child that has already exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

describe('data directory lock', () => {
  it('refuses a lock held by a live process of this host, naming it', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.ppid} here\n`);
    expect(() => lockDataDir(dir, 'here')).to.throw(`is in use by another meshaudit (pid ${process.ppid})`);
  });

  it('takes over a lock left by a dead process of this host, or one holding its own pid', () => {
    for (const pid of [deadPid(), process.pid]) {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, LOCK_FILE), `${pid} here\n`);
      const release = lockDataDir(dir, 'here');
      expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.1`]);
      expect(fs.readFileSync(path.join(dir, `${LOCK_FILE}.1`), 'utf8')).to.equal(`${process.pid} here\n`);
      release();
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    }
  });

  it('refuses a fresh lock from another host (another container on a shared volume), whatever its pid', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.pid} other-pod\n`);
    expect(() => lockDataDir(dir, 'here')).to.throw(`(pid ${process.pid} on host other-pod)`);
  });

  it('takes over a lock from another host whose heartbeat stopped', () => {
    const dir = tempDir();
    const file = path.join(dir, LOCK_FILE);
    fs.writeFileSync(file, '1 other-pod\n');
    const old = new Date(Date.now() - STALE_AFTER_MS - 1000);
    fs.utimesSync(file, old, old);
    lockDataDir(dir, 'here')();
  });

  it('judges the newest generation, takes the next one, and removes the older ones', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.7`), `${process.ppid} here\n`);
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.9`), `${deadPid()} here\n`);
    const release = lockDataDir(dir, 'here');
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.10`]);
    release();
  });

  it('refuses while a newer generation than a stale one is held', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.2`), `${deadPid()} here\n`);
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.3`), `${process.ppid} here\n`);
    expect(() => lockDataDir(dir, 'here')).to.throw(`delete ${path.join(dir, `${LOCK_FILE}.3`)}`);
    expect(fs.readdirSync(dir).sort()).to.deep.equal([`${LOCK_FILE}.2`, `${LOCK_FILE}.3`]);
  });

  it('releases only its own generation, leaving the one that took over', () => {
    const dir = tempDir();
    const release = lockDataDir(dir, 'here');
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.2`), '4242 someone-else\n');
    release();
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.2`]);
  });

  it('removes what a process that died while taking the lock left, once it is old', () => {
    const dir = tempDir();
    const left = path.join(dir, '.meshaudit.lock.pending-1-abc');
    const fresh = path.join(dir, '.meshaudit.lock.pending-2-def');
    fs.writeFileSync(left, '1 here\n');
    fs.writeFileSync(fresh, '2 here\n');
    const old = new Date(Date.now() - STALE_AFTER_MS - 1000);
    fs.utimesSync(left, old, old);
    lockDataDir(dir, 'here')();
    expect(fs.readdirSync(dir)).to.deep.equal(['.meshaudit.lock.pending-2-def']);
  });

  it('takes the lock back after its directory was removed, unless another sidecar holds it by then', () => {
    const dir = path.join(tempDir(), 'data');
    const lock = new DataDirLock(dir, 'here');
    fs.rmSync(dir, { recursive: true });
    lock.retake();
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.1`]);
    fs.rmSync(dir, { recursive: true });
    fs.mkdirSync(dir);
    // Another sidecar (a live process) took the emptied directory, under the very name ours had.
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.1`), `${process.ppid} here\n`);
    expect(() => lock.retake()).to.throw(`is in use by another meshaudit (pid ${process.ppid})`);
    lock.release();
    expect(fs.readFileSync(path.join(dir, `${LOCK_FILE}.1`), 'utf8')).to.equal(`${process.ppid} here\n`);
  });
});
