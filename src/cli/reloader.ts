// Reloading the config and the --rules files while running: on SIGHUP, and when the content of the
// config file or of a rules file changes on disk. Kubernetes swaps a mounted ConfigMap by renaming a
// `..data` symlink in the files' folder (and no signal crosses containers), editors and config tools
// replace a file by rename: so the folders are watched, not the files, and the files are read again by
// their paths. A change is acted on only when the bytes differ from the last ones read (a touch, or the
// other events of a swap, do nothing).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../config';
import { loadAccessAuditFiles } from '../config/rules-files';
import { MeshauditError } from '../errors';
import type { Logger } from '../log';
import { formatViolation } from '../validators';
import { knownTypesOf, type Sidecar } from './sidecar';

/** A file larger than this is judged by its size and time, not read whole at every event (rulesFileBytes' top). */
const MAX_HASHED_BYTES = 16 * 1024 * 1024;

/**
 * How long the folder must be quiet before the file is read: a ConfigMap swap is several renames and
 * an editor's save a write then a rename; reading in the middle would see a half-made state.
 */
const DEBOUNCE_MS = 100;

export interface ReloaderOptions {
  /** --config as given (it prefixes every message); undefined: the built-in defaults, nothing to watch. */
  readonly configFile: string | undefined;
  readonly cwd: string;
  /** The --rules files. */
  readonly rules: readonly string[];
  readonly log: Logger;
}

/**
 * Whether a change to the entry `name` of a watched folder may change `files`: one of them, or a
 * `..`-named entry (the kubelet's `..data` symlink and the `..<timestamp>` folders it swaps in). The
 * sidecar's own folders (dataDir, the audit folders) often sit beside the config and change all the
 * time: they are not read again for that.
 */
export function concerns(name: string | Buffer | null, files: readonly string[]): boolean {
  if (name === null) return true;
  const entry = name.toString();
  return entry.startsWith('..') || files.some((f) => path.basename(f) === entry);
}

export class ConfigReloader {
  /** The tail of the chain of reloads: each starts when the one before is done. */
  private last: Promise<void> = Promise.resolve();
  private readonly watchers: fs.FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastHash: string | undefined;
  private readonly absolute: string | undefined;
  /** The config file and the rules files, absolute: what the hash covers. */
  private readonly files: readonly string[];
  private attach: (sidecar: Sidecar) => void = () => {};
  private readonly sidecar = new Promise<Sidecar>((resolve) => (this.attach = resolve));

  /**
   * Made before the config is loaded at start-up: the bytes it starts from are those start-up reads, or
   * older (then the first look after a change reloads). A reload asked for during start-up waits for it.
   */
  constructor(private readonly opts: ReloaderOptions) {
    this.absolute = opts.configFile === undefined ? undefined : path.resolve(opts.cwd, opts.configFile);
    this.files = [
      ...(this.absolute === undefined ? [] : [this.absolute]),
      ...opts.rules.map((f) => path.resolve(opts.cwd, f)),
    ];
    this.lastHash = this.hash();
  }

  /** The sidecar started: reloads asked for meanwhile run now. */
  started(sidecar: Sidecar): void {
    this.attach(sidecar);
  }

  /** Reads the config and the rules files again and puts them in force, after any reload under way. */
  reload(why: string): Promise<void> {
    const run = this.last.then(async () => this.reloadNow(await this.sidecar, why));
    this.last = run.catch(() => {});
    return run;
  }

  /** Watches the folders of the config and rules files; a change of their bytes reloads. */
  watch(): void {
    for (const dir of new Set(this.files.map((f) => path.dirname(f)))) {
      try {
        const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
          if (concerns(name, this.files)) this.changed();
        });
        watcher.on('error', (err) =>
          this.opts.log.warn('a config folder can no longer be watched: reload with SIGHUP', { dir, err }),
        );
        this.watchers.push(watcher);
      } catch (err) {
        this.opts.log.warn('a config folder cannot be watched: reload with SIGHUP', { dir, err });
      }
    }
  }

  close(): void {
    for (const w of this.watchers) w.close();
    clearTimeout(this.timer);
  }

  private changed(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const hash = this.hash();
      // Gone for a moment (between the renames of a swap), or the same bytes: nothing to do.
      if (hash === undefined || hash === this.lastHash) {
        this.opts.log.debug('config folder changed; the files are the same: nothing to reload', {
          files: this.files,
        });
        return;
      }
      void this.reload('the config or rules files changed');
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  /**
   * SHA-256 over the files' bytes; undefined while one is missing (between the renames of a swap). Only
   * regular files are read, opened without blocking: a FIFO in their place must not stop the sidecar
   * (the reload then refuses it, naming it).
   */
  private hash(): string | undefined {
    if (this.files.length === 0) return undefined;
    const h = createHash('sha256');
    for (const file of this.files) {
      h.update(`${file}\0`);
      let fd: number | undefined;
      try {
        fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        const st = fs.fstatSync(fd);
        if (!st.isFile()) h.update('not a regular file');
        else if (st.size > MAX_HASHED_BYTES) h.update(`${st.size} bytes at ${st.mtimeMs}`);
        else h.update(fs.readFileSync(fd));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        h.update(`unreadable: ${(err as NodeJS.ErrnoException).code}`);
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
      h.update('\0');
    }
    return h.digest('hex');
  }

  private async reloadNow(sidecar: Sidecar, why: string): Promise<void> {
    const { log } = this.opts;
    log.debug('config reload started', { why, files: this.files });
    // The bytes looked at now: the watcher acts again only on other bytes, even when these are refused.
    this.lastHash = this.hash() ?? this.lastHash;
    try {
      const next = loadConfig({ file: this.opts.configFile, cwd: this.opts.cwd });
      for (const w of next.warnings) log.warn(`config: ${w}`);
      // The resource types are the start-up ones (meshaudit.extraResourceTypes needs a restart); the
      // files are read under the new limits.
      const loaded =
        this.opts.rules.length === 0
          ? undefined
          : loadAccessAuditFiles(this.opts.rules, knownTypesOf(sidecar.config), next.config.limits);
      for (const w of loaded?.warnings ?? []) log.warn(`rules: ${formatViolation(w)}`);
      const summary = await sidecar.reload(next.config, loaded?.audits);
      sidecar.metrics.configReloads.inc({ result: 'applied' });
      log.info('config reloaded', {
        why,
        changed: summary.changed,
        restartNeeded: summary.restartNeeded,
        ...(summary.rules === undefined ? { rules: 'no --rules files' } : { rules: summary.rules }),
      });
    } catch (err) {
      sidecar.metrics.configReloads.inc({ result: 'refused' });
      // A domain error names the key and the file; anything else is a bug, logged with its stack.
      const detail = err instanceof MeshauditError ? err.message : err instanceof Error ? (err.stack ?? err) : err;
      log.error('config reload refused; the config and rules in force stay', { why, err: String(detail) });
    }
  }
}
