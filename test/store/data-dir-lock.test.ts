import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  DataDirLock,
  type DataDirLockOptions,
  LOCK_FILE,
  type LockIdentity,
  ownIdentity,
  STALE_AFTER_MS,
} from '../../src/store/data-dir-lock';
import { deadPid, tempDir, waitFor } from '../support/helpers';

/** This process on host `here`, in pid namespace `pid:[1]` and network namespace `net:[1]` of boot `b1`. */
const ME: LockIdentity = {
  pid: process.pid,
  host: 'here',
  pidNamespace: 'pid:[1]',
  bootId: 'b1',
  netNamespace: 'net:[1]',
};
const take = (dir: string, opts: DataDirLockOptions = {}): Promise<DataDirLock> =>
  DataDirLock.take(dir, { identity: ME, watchMs: 200, ...opts });

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the lock to be refused');
}

describe('data directory lock', () => {
  it('names this process by pid, host, pid namespace and boot', () => {
    const me = ownIdentity('here');
    expect(me.pid).to.equal(process.pid);
    expect(me.host).to.equal('here');
    if (process.platform === 'linux') {
      expect(me.pidNamespace).to.match(/^pid:\[\d+\]$/);
      expect(me.bootId).to.match(/^[0-9a-f-]{36}$/);
    }
  });

  it('refuses a lock held by a live process of this process space, naming it, without waiting', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.ppid} here pid:[1] b1\n`);
    let watched = false;
    const why = await refusal(take(dir, { onWatch: () => (watched = true) }));
    expect(why).to.include(`is in use by another meshaudit (pid ${process.ppid}); if no such sidecar runs, delete`);
    expect(watched).to.equal(false);
  });

  it('takes over a lock left by a dead process of this process space, or one holding its own pid', async () => {
    // The lock of an earlier version names only the pid and the host: judged by the host, as it was.
    for (const holder of [`${deadPid()} here pid:[1] b1`, `${process.pid} here pid:[1] b1`, `${deadPid()} here`]) {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, LOCK_FILE), `${holder}\n`);
      const lock = await take(dir);
      expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.1`]);
      expect(fs.readFileSync(path.join(dir, `${LOCK_FILE}.1`), 'utf8')).to.equal(
        `${process.pid} here pid:[1] b1 net:[1]\n`,
      );
      lock.release();
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    }
  });

  // Another host on a shared volume, another container of the pod with its own pid namespace (where pid
  // 1 is everybody's), or the same host after a reboot: the holder's pid means nothing here.
  for (const [where, holder] of [
    ['another host', 'other-pod pid:[1] b1'],
    ['another pid namespace of this host', 'here pid:[2] b1'],
    ['an earlier boot of this host', 'here pid:[1] b0'],
  ])
    it(`watches a lock from ${where}: refused while its heartbeat goes on, taken over once it stops`, async () => {
      const dir = tempDir();
      const file = path.join(dir, LOCK_FILE);
      // Alive here, and this process's own pid: neither may count.
      fs.writeFileSync(file, `${process.pid} ${holder}\n`);
      const watches: number[] = [];
      let beats = 0;
      const heartbeat = setInterval(() => {
        const t = new Date(Date.now() + ++beats * 1000);
        fs.utimesSync(file, t, t);
      }, 20);
      try {
        const why = await refusal(take(dir, { onWatch: (_h, _f, ms) => watches.push(ms) }));
        expect(why).to.match(/\(pid \d+( on host other-pod)?\), whose heartbeat goes on: stop it first$/);
      } finally {
        clearInterval(heartbeat);
      }
      const lock = await take(dir, { onWatch: (_h, _f, ms) => watches.push(ms) });
      expect(watches).to.deep.equal([200, 200]);
      expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.1`]);
      lock.release();
    });

  if (process.platform === 'linux') {
    it("takes over at once a live pid's lock from this network namespace: holding the kernel lock, its holder is gone", async () => {
      const dir = tempDir();
      // Another pid namespace of this pod (a container restarted): its pid means nothing here, but it
      // held the directory's kernel lock while it ran, and this process could bind it.
      fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.ppid} here pid:[2] b1 net:[1]\n`);
      let watched = false;
      const lock = await take(dir, { onWatch: () => (watched = true) });
      expect(watched).to.equal(false);
      lock.release();
    });

    it('refuses at once, without watching, while a live process of this network namespace holds the kernel lock', async () => {
      const dir = tempDir();
      const first = await take(dir);
      let watched = false;
      const other = { ...ME, pidNamespace: 'pid:[3]', pid: process.ppid };
      const why = await refusal(take(dir, { identity: other, onWatch: () => (watched = true) }));
      expect(why).to.include('is in use by another meshaudit');
      expect(watched).to.equal(false);
      first.release();
      // Released: the kernel lock is free again, and the file names a pid of this process space.
      (await take(dir)).release();
    });
  }

  it('judges the newest generation, takes the next one, and removes the older ones', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.7`), `${process.ppid} here\n`);
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.9`), `${deadPid()} here\n`);
    const lock = await take(dir);
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.10`]);
    lock.release();
  });

  it('refuses while a newer generation than a stale one is held', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.2`), `${deadPid()} here\n`);
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.3`), `${process.ppid} here\n`);
    expect(await refusal(take(dir))).to.include(`delete ${path.join(dir, `${LOCK_FILE}.3`)}`);
    expect(fs.readdirSync(dir).sort()).to.deep.equal([`${LOCK_FILE}.2`, `${LOCK_FILE}.3`]);
  });

  it('releases only its own generation, leaving the one that took over', async () => {
    const dir = tempDir();
    const lock = await take(dir);
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.2`), '4242 someone-else\n');
    lock.release();
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.2`]);
  });

  it('removes what a process that died while taking the lock left, once it is old', async () => {
    const dir = tempDir();
    const left = path.join(dir, '.meshaudit.lock.pending-1-abc');
    const fresh = path.join(dir, '.meshaudit.lock.pending-2-def');
    fs.writeFileSync(left, '1 here\n');
    fs.writeFileSync(fresh, '2 here\n');
    const old = new Date(Date.now() - STALE_AFTER_MS - 1000);
    fs.utimesSync(left, old, old);
    (await take(dir)).release();
    expect(fs.readdirSync(dir)).to.deep.equal(['.meshaudit.lock.pending-2-def']);
  });

  it('takes the lock back after its directory was removed; held by another sidecar by then, it is taken over', async () => {
    const dir = path.join(tempDir(), 'data');
    const takenOver: string[] = [];
    const lock = await take(dir, { onTakenOver: (why) => takenOver.push(why) });
    await lock.ensureHeld(); // held: nothing to do, and nothing is read
    fs.rmSync(dir, { recursive: true });
    await lock.ensureHeld(true);
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.1`]);
    expect(takenOver).to.deep.equal([]);
    fs.rmSync(dir, { recursive: true });
    fs.mkdirSync(dir);
    // Another sidecar (a live process) took the emptied directory, under the very name ours had.
    fs.writeFileSync(path.join(dir, `${LOCK_FILE}.1`), `${process.ppid} here pid:[1] b1\n`);
    expect(await refusal(lock.ensureHeld(true))).to.include(
      `was taken over: ${path.join(dir, `${LOCK_FILE}.1`)} holds another process's lock`,
    );
    expect(takenOver).to.have.length(1);
    lock.release();
    expect(fs.readFileSync(path.join(dir, `${LOCK_FILE}.1`), 'utf8')).to.equal(`${process.ppid} here pid:[1] b1\n`);
  });

  it('takes no failure to take the lock again for a takeover: a folder it cannot make is retried, not fatal', async () => {
    const dir = path.join(tempDir(), 'data');
    const takenOver: string[] = [];
    const lock = await take(dir, { onTakenOver: (why) => takenOver.push(why) });
    fs.rmSync(dir, { recursive: true });
    fs.writeFileSync(dir, 'a file where the folder was');
    expect(await refusal(lock.ensureHeld(true))).to.include(`can't create ${dir} (meshaudit.dataDir)`);
    expect(takenOver).to.deep.equal([]);
    fs.rmSync(dir);
    await lock.ensureHeld(true);
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.1`]);
    lock.release();
  });

  it('finds at a heartbeat that another process took over, says so once, and never takes it back', async () => {
    const dir = tempDir();
    const lost: string[] = [];
    const takenOver: string[] = [];
    const lock = await take(dir, {
      heartbeatMs: 10,
      onLost: (why) => lost.push(why),
      onTakenOver: (why) => takenOver.push(why),
    });
    // What a takeover does: the next generation, then the older ones removed.
    const theirs = path.join(dir, `${LOCK_FILE}.2`);
    fs.writeFileSync(theirs, `${process.ppid} here pid:[1] b1\n`);
    fs.rmSync(path.join(dir, `${LOCK_FILE}.1`));
    await waitFor(() => takenOver.length > 0, 'the heartbeat to find the lock taken over');
    expect(takenOver).to.deep.equal([`${theirs} is newer than ours: another process took the directory over`]);
    expect(lost).to.deep.equal([]);
    expect(await refusal(lock.ensureHeld())).to.include('was taken over');
    // Even once the other is gone: the files may have been cut under this process; a restart recovers.
    fs.writeFileSync(theirs, `${deadPid()} here pid:[1] b1\n`);
    expect(await refusal(lock.ensureHeld(true))).to.include('was taken over');
    expect(takenOver).to.have.length(1);
    lock.release();
    expect(fs.readdirSync(dir)).to.deep.equal([`${LOCK_FILE}.2`]);
  });
});
