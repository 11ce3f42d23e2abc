// One sidecar per data directory. Two processes on one dataDir (a rolling update on a shared volume, a
// second sidecar started by mistake on another port) would interleave checkpoint lines and cut each
// other's audit files on recovery, so the second one refuses to start.
//
// Whether the holder of a lock still runs:
// - In the same process space (same host name, pid namespace and boot), its pid says so at once. A
//   lock holding this process's own pid there is stale (its owner was this pid before a restart).
// - Anywhere else (another host on a shared volume, another container of the same pod with its own
//   pid namespace, where pid 1 is everybody's pid), the pid means nothing here. The holder touches its
//   lock every HEARTBEAT_MS; a starting sidecar watches the lock for STALE_AFTER_MS by its own clock:
//   touched meanwhile, the holder runs (refused); untouched, it is gone (taken over). No clock of
//   another machine is compared with ours.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_FILE_MODES, type FileModes, makeDir } from '../backends/file-modes';
import { whyNotWritable } from '../config/places';
import { MeshauditError } from '../errors';

/** The lock's name; each holder adds its generation (`meshaudit.lock.3`). */
export const LOCK_FILE = 'meshaudit.lock';
/** The holder touches its lock this often, and checks that it still holds it. */
const HEARTBEAT_MS = 10_000;
/** A lock from another process space untouched for this long (watched by the starting sidecar) is stale. */
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;

/** The data directory is taken by another sidecar, or cannot be locked (exit 1 at start-up). */
export class DataDirLockError extends MeshauditError {
  readonly kind = 'unavailable';
}

/** Another live sidecar holds the data directory (not a file system error: taking it again will not help). */
export class DataDirInUseError extends DataDirLockError {}

/** Who holds (or wants) a lock: enough to tell where its pid means something. */
export interface LockIdentity {
  readonly pid: number;
  readonly host: string;
  /** `pid:[4026531836]` (Linux); '' where unknown. */
  readonly pidNamespace: string;
  /** The kernel's boot id (Linux); '' where unknown. */
  readonly bootId: string;
  /** `net:[4026531840]` (Linux); '' where unknown (a holder of an earlier version). */
  readonly netNamespace?: string;
}

function readOr(read: () => string, fallback: string): string {
  try {
    return read().trim();
  } catch {
    return fallback; // not Linux, or no /proc: the host name alone tells process spaces apart
  }
}

/** This process, as its lock names it. */
export function ownIdentity(host: string = os.hostname()): LockIdentity {
  return {
    pid: process.pid,
    host,
    pidNamespace: readOr(() => fs.readlinkSync('/proc/self/ns/pid'), ''),
    bootId: readOr(() => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'), ''),
    netNamespace: readOr(() => fs.readlinkSync('/proc/self/ns/net'), ''),
  };
}

function tokenOf(id: LockIdentity): string {
  return `${id.pid} ${id.host} ${id.pidNamespace || '-'} ${id.bootId || '-'} ${id.netNamespace || '-'}\n`;
}

/** The holder written in a lock; undefined when it names none (an empty or foreign file). */
function parseHolder(text: string): LockIdentity | undefined {
  const [pid, host, ns, boot, net] = text.trim().split(/\s+/);
  const n = Number.parseInt(pid, 10);
  if (!Number.isInteger(n) || n <= 0) return undefined;
  // Earlier versions wrote only the pid and host: judged by the host, as they were.
  const unknown = (v: string | undefined): string => (v === undefined || v === '-' ? '' : v);
  return { pid: n, host: host ?? '', pidNamespace: unknown(ns), bootId: unknown(boot), netNamespace: unknown(net) };
}

/** Whether a pid of `holder` means the same process here. */
function sameProcessSpace(holder: LockIdentity, me: LockIdentity): boolean {
  if (holder.host !== me.host) return false;
  const known = (a: string, b: string): boolean => a === '' || b === '' || a === b;
  return known(holder.pidNamespace, me.pidNamespace) && known(holder.bootId, me.bootId);
}

function sameNetwork(holder: LockIdentity, me: LockIdentity): boolean {
  const net = holder.netNamespace ?? '';
  return net !== '' && net === me.netNamespace && holder.bootId !== '' && holder.bootId === me.bootId;
}

/**
 * The kernel's side of the lock: an abstract Unix socket (Linux) named after the data directory's device
 * and inode, bound while the sidecar runs. The kernel releases it the moment its process dies, and
 * keeps it while the process lives, frozen or not; every process of one network namespace sees it (the
 * containers of a pod share one). So within a network namespace, a second sidecar is refused at once
 * and a crashed one's lock is taken over at once, with no heartbeat watched. Beyond it (another pod on
 * a shared volume), the file's heartbeat still decides.
 */
interface KernelLock {
  readonly name: string;
  readonly server: net.Server;
}

function kernelLockName(dataDir: string): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const st = fs.statSync(dataDir);
  return `\0meshaudit-data-dir-${st.dev}-${st.ino}`;
}

/** Binds the kernel lock: the lock, 'in-use' when a live process of this network namespace holds it, undefined where none can be bound. */
async function bindKernelLock(
  dataDir: string,
  own: KernelLock | undefined,
): Promise<KernelLock | 'in-use' | undefined> {
  const name = kernelLockName(dataDir);
  if (name === undefined) return undefined;
  if (own?.name === name) return own;
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: name }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') return 'in-use';
    return undefined; // no abstract sockets here: the file lock alone
  }
  server.unref();
  return { name, server };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock file and its generation; `meshaudit.lock` without one (earlier versions wrote it) is generation 0. */
interface LockFile {
  generation: number;
  file: string;
}

const LOCK_NAME = /^meshaudit\.lock(?:\.(\d{1,15}))?$/;
const PENDING_PREFIX = '.meshaudit.lock.pending-';

function lockFiles(dataDir: string): LockFile[] {
  const found: LockFile[] = [];
  for (const name of fs.readdirSync(dataDir)) {
    const m = LOCK_NAME.exec(name);
    if (m) found.push({ generation: m[1] === undefined ? 0 : Number(m[1]), file: path.join(dataDir, name) });
  }
  return found.sort((a, b) => b.generation - a.generation);
}

/** A lock held from another process space, as seen at one moment: it is watched for a change. */
interface Sighting {
  readonly file: string;
  readonly holder: LockIdentity;
  readonly mtimeMs: number;
}

type Verdict = 'free' | 'changed' | DataDirLockError | Sighting;

function inUse(
  dataDir: string,
  file: string,
  holder: LockIdentity,
  me: LockIdentity,
  beating = false,
): DataDirInUseError {
  const where = holder.host === me.host ? '' : ` on host ${holder.host}`;
  // A heartbeat seen going on proves the holder runs: deleting its lock would make two holders.
  const advice = beating ? ', whose heartbeat goes on: stop it first' : `; if no such sidecar runs, delete ${file}`;
  return new DataDirInUseError(
    `${dataDir} (meshaudit.dataDir) is in use by another meshaudit (pid ${holder.pid}${where})${advice}`,
  );
}

/** What the newest lock says: free to take, held here (refused), held elsewhere (to watch), or changed. */
function judge(newest: LockFile | undefined, dataDir: string, me: LockIdentity, kernelHeld: boolean): Verdict {
  if (newest === undefined) return 'free';
  let holder: LockIdentity | undefined;
  let mtimeMs: number;
  try {
    holder = parseHolder(fs.readFileSync(newest.file, 'utf8'));
    mtimeMs = fs.statSync(newest.file).mtimeMs;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'changed'; // cleaned up by a newer holder
    throw e;
  }
  if (holder === undefined) return 'free';
  // A holder of this network namespace (and boot) held the kernel lock while it ran; this process holds
  // it now, so that holder is gone, whatever its pid namespace (a container restarted in its pod).
  if (kernelHeld && sameNetwork(holder, me)) return 'free';
  if (!sameProcessSpace(holder, me)) return { file: newest.file, holder, mtimeMs };
  if (holder.pid === me.pid || !alive(holder.pid)) return 'free';
  return inUse(dataDir, newest.file, holder, me);
}

export interface LockOptions {
  /** Default: this process (ownIdentity()). */
  readonly identity?: LockIdentity;
  /** How long a lock from another process space is watched for its heartbeat; STALE_AFTER_MS by default. */
  readonly watchMs?: number;
  /** Told when start-up waits on a lock from another process space. */
  readonly onWatch?: (holder: LockIdentity, file: string, ms: number) => void;
  /** The modes of the data directory (when it creates it) and the lock (meshaudit.files). */
  readonly modes?: FileModes;
}

/** A lock taken: its file and the token in it. */
interface Held {
  readonly file: string;
  readonly token: string;
  /** The kernel's side of the lock, where there is one. */
  readonly kernel: KernelLock | undefined;
}

/**
 * Takes the data directory for this process (`<dataDir>/meshaudit.lock.<n>`). A lock whose holder is
 * gone (SIGKILL, a crash) is taken over; one from another process space only after it was watched,
 * untouched, for STALE_AFTER_MS.
 *
 * The holder is whoever holds the newest generation. A takeover never removes anything: it creates the
 * next generation with link(2), which exactly one process can do, from a file already written whole,
 * so a lock is never seen empty. Removing a stale lock and creating a fresh one instead let two
 * processes that both judged it stale both start: one removed the other's fresh lock. A process that
 * created its generation and then sees a newer one lost to a process that judged the same lock stale
 * first; it withdraws. Generations older than the holder's are left by processes that are gone, and the
 * holder removes them.
 */
async function takeLock(dataDir: string, opts: LockOptions = {}, ownKernel?: KernelLock): Promise<Held> {
  const me = opts.identity ?? ownIdentity();
  const modes = opts.modes ?? DEFAULT_FILE_MODES;
  try {
    makeDir(dataDir, modes);
  } catch (e) {
    const why = whyNotWritable(dataDir) ?? (e as Error).message;
    throw new DataDirLockError(`can't create ${dataDir} (meshaudit.dataDir): ${why}`);
  }
  const token = tokenOf(me);
  const pending = path.join(dataDir, `${PENDING_PREFIX}${me.pid}-${randomBytes(6).toString('hex')}`);
  /** A sighting watched, untouched, for the whole watch: stale. */
  let stale: Sighting | undefined;
  let kernel: KernelLock | 'in-use' | undefined;
  let taken = false;
  try {
    kernel = await bindKernelLock(dataDir, ownKernel);
    if (kernel === 'in-use') {
      const newest = lockFiles(dataDir)[0];
      const holder =
        newest === undefined ? undefined : parseHolder(readOr(() => fs.readFileSync(newest.file, 'utf8'), ''));
      // The file names the holder only once it has written it; a stale one may still be there.
      if (newest !== undefined && holder !== undefined && sameProcessSpace(holder, me) && alive(holder.pid)) {
        throw inUse(dataDir, newest.file, holder, me);
      }
      throw new DataDirInUseError(
        `${dataDir} (meshaudit.dataDir) is in use by another meshaudit of this host or pod: a live process ` +
          "holds the directory's kernel lock",
      );
    }
    fs.writeFileSync(pending, token, { flag: 'wx', mode: modes.file });
    fs.chmodSync(pending, modes.file);
    for (let attempt = 0; attempt < 10; attempt++) {
      const newest = lockFiles(dataDir)[0];
      const verdict = judge(newest, dataDir, me, kernel !== undefined);
      if (verdict instanceof DataDirLockError) throw verdict;
      if (verdict === 'changed') continue;
      if (verdict !== 'free' && !sameSighting(verdict, stale)) {
        stale = await watch(dataDir, verdict, me, opts);
        continue; // judged again: the directory may have changed while it was watched
      }
      const generation = (newest?.generation ?? 0) + 1;
      const mine = path.join(dataDir, `${LOCK_FILE}.${generation}`);
      try {
        fs.linkSync(pending, mine);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process took this generation
        throw e;
      }
      const [first, ...older] = lockFiles(dataDir);
      if (first.generation !== generation) {
        fs.rmSync(mine, { force: true });
        continue;
      }
      removeLeftovers(dataDir, older, pending);
      taken = true;
      return { file: mine, token, kernel };
    }
  } catch (e) {
    if (e instanceof DataDirLockError) throw e;
    throw new DataDirLockError(`can't lock ${dataDir} (meshaudit.dataDir): ${(e as Error).message}`);
  } finally {
    fs.rmSync(pending, { force: true });
    // Not taken: the kernel lock goes too (unless it is the one this process held before).
    if (!taken && kernel !== undefined && kernel !== 'in-use' && kernel !== ownKernel) kernel.server.close();
  }
  throw new DataDirLockError(`can't lock ${dataDir} (meshaudit.dataDir): other processes keep taking it`);
}

function sameSighting(a: Sighting, b: Sighting | undefined): boolean {
  return b !== undefined && a.file === b.file && a.mtimeMs === b.mtimeMs;
}

/**
 * Watches a lock held from another process space for `watchMs` by this process's clock: throws when
 * its holder touches it (it runs), returns the sighting when it stays untouched (stale), and returns
 * undefined as soon as the lock is gone or replaced (to be judged again).
 */
async function watch(
  dataDir: string,
  seen: Sighting,
  me: LockIdentity,
  opts: LockOptions,
): Promise<Sighting | undefined> {
  const watchMs = opts.watchMs ?? STALE_AFTER_MS;
  opts.onWatch?.(seen.holder, seen.file, watchMs);
  // A monotonic clock: a wall clock stepped forward (as early after a boot) would cut the watch short.
  const until = performance.now() + watchMs;
  while (performance.now() < until) {
    await sleep(Math.min(500, Math.max(1, until - performance.now())));
    let mtimeMs: number;
    try {
      mtimeMs = fs.statSync(seen.file).mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (lockFiles(dataDir)[0]?.file !== seen.file) return undefined;
    if (mtimeMs !== seen.mtimeMs) throw inUse(dataDir, seen.file, seen.holder, me, true);
  }
  return seen;
}

/** Older generations, and pending files of processes that died while taking the lock (untouched for long). */
function removeLeftovers(dataDir: string, older: readonly LockFile[], pending: string): void {
  for (const { file } of older) fs.rmSync(file, { force: true });
  for (const name of fs.readdirSync(dataDir)) {
    const file = path.join(dataDir, name);
    if (!name.startsWith(PENDING_PREFIX) || file === pending) continue;
    try {
      if (Date.now() - fs.statSync(file).mtimeMs > STALE_AFTER_MS) fs.rmSync(file, { force: true });
    } catch {
      // Gone already: its process finished taking (or failing to take) the lock.
    }
  }
}

/** Why a lock is no longer ours: gone (its directory removed or emptied), or taken over by another process. */
export interface LockLoss {
  readonly reason: string;
  /** Another process holds the directory now: this one must stop writing to it at once. */
  readonly takenOver: boolean;
}

/** Why `held` is no longer ours, or undefined while it is. */
function lossOf(dataDir: string, held: Held): LockLoss | undefined {
  try {
    // A newer generation first: a process that took over has removed ours already.
    const newest = lockFiles(dataDir)[0];
    if (newest !== undefined && newest.file !== held.file && newest.generation > generationOf(held.file)) {
      return { reason: `${newest.file} is newer than ours: another process took the directory over`, takenOver: true };
    }
    if (fs.readFileSync(held.file, 'utf8') !== held.token) {
      return { reason: `${held.file} holds another process's lock`, takenOver: true };
    }
    return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { reason: `${held.file} is gone`, takenOver: false };
    return { reason: `can't read ${held.file}: ${(e as Error).message}`, takenOver: false };
  }
}

function generationOf(file: string): number {
  const m = LOCK_NAME.exec(path.basename(file));
  return m?.[1] === undefined ? 0 : Number(m[1]);
}

export interface DataDirLockOptions extends LockOptions {
  /** Told once when a heartbeat finds the lock gone (the directory removed): the next commit takes it again. */
  readonly onLost?: (reason: string) => void;
  /**
   * Told once when the lock turns out to be another process's (a heartbeat, or taking it again, finds it
   * held): two sidecars on one directory cut each other's files, so this one must stop at once.
   */
  readonly onTakenOver?: (reason: string) => void;
  /** Told when a heartbeat cannot touch the lock (it is retried at the next one). */
  readonly onHeartbeatError?: (err: Error) => void;
  /** HEARTBEAT_MS by default; shorter in tests. */
  readonly heartbeatMs?: number;
}

/**
 * The data directory's lock, held from start to stop. Its heartbeat touches it and checks that it
 * still holds it. A lock gone with its directory is taken again by ensureHeld() (before each
 * checkpoint commit); a lock another process holds is fatal (onTakenOver): the sidecar stops rather
 * than write beside it.
 */
export class DataDirLock {
  private heartbeat: NodeJS.Timeout | undefined;
  private lost: LockLoss | undefined;
  private takenOverTold = false;

  private constructor(
    readonly dataDir: string,
    private held: Held,
    private readonly opts: DataDirLockOptions,
  ) {
    this.beat();
  }

  static async take(dataDir: string, opts: DataDirLockOptions = {}): Promise<DataDirLock> {
    return new DataDirLock(dataDir, await takeLock(dataDir, opts), opts);
  }

  /** Why the lock was found lost, or undefined while it is held. */
  get lostBecause(): string | undefined {
    return this.lost?.reason;
  }

  /**
   * Resolves once this process holds the lock. While the heartbeat finds it held this costs nothing (no
   * file is read on the hot path: the checkpoint asks before every commit); `recheck` looks at the
   * directory now (the checkpoint found itself removed). A lost lock is taken again, the next generation
   * before ours is released, so that the directory is never unlocked. Throws DataDirLockError while
   * another sidecar holds it: nothing is committed, so nothing more is acknowledged.
   */
  async ensureHeld(recheck = false): Promise<void> {
    if (recheck) this.lost ??= lossOf(this.dataDir, this.held);
    if (this.lost === undefined) return;
    if (this.lost.takenOver) throw this.takenOver(this.lost.reason);
    let next: Held;
    try {
      next = await takeLock(this.dataDir, this.opts, this.held.kernel);
    } catch (e) {
      // Held by another sidecar by now (it started on the emptied directory): this one must stop. Any
      // other failure (a full disk, a folder that cannot be made) fails this commit, which is retried.
      if (e instanceof DataDirInUseError) throw this.takenOver(e.message);
      throw e;
    }
    // The same name again means ours was gone (the directory removed): that file is the new lock now.
    if (next.file === this.held.file) clearInterval(this.heartbeat);
    else this.stop(false);
    // The kernel lock of a directory that was removed names its old inode: let it go.
    if (this.held.kernel !== undefined && this.held.kernel !== next.kernel) this.held.kernel.server.close();
    this.held = next;
    this.lost = undefined;
    this.beat();
  }

  private takenOver(reason: string): DataDirLockError {
    this.lost = { reason, takenOver: true };
    if (!this.takenOverTold) {
      this.takenOverTold = true;
      this.opts.onTakenOver?.(reason);
    }
    return new DataDirLockError(`the data directory ${this.dataDir} was taken over: ${reason}`);
  }

  release(): void {
    this.stop(true);
  }

  private beat(): void {
    this.heartbeat = setInterval(() => {
      if (this.lost !== undefined) return;
      const loss = lossOf(this.dataDir, this.held);
      if (loss !== undefined) {
        if (loss.takenOver) this.takenOver(loss.reason);
        else {
          this.lost = loss;
          this.opts.onLost?.(loss.reason);
        }
        return;
      }
      const now = new Date();
      try {
        fs.utimesSync(this.held.file, now, now);
      } catch (e) {
        this.opts.onHeartbeatError?.(e as Error);
      }
    }, this.opts.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Stops the heartbeat and removes our lock file, only if it still holds our token; `kernel`: the kernel lock too. */
  private stop(kernel: boolean): void {
    clearInterval(this.heartbeat);
    if (kernel) this.held.kernel?.server.close();
    // Only our own file: after the directory was removed, another sidecar may hold the same name now,
    // even the same inode number.
    try {
      if (fs.readFileSync(this.held.file, 'utf8') === this.held.token) fs.rmSync(this.held.file, { force: true });
    } catch {
      // Gone already (the directory was removed): nothing of ours to release.
    }
  }
}
