// Reloading the config and the --rules files while running: on SIGHUP, and when the config file's
// content changes on disk. Kubernetes swaps a mounted ConfigMap by renaming a `..data` symlink in the
// file's folder (and no signal crosses containers), editors and config tools replace a file by rename:
// so the folder is watched, not the file, and the file is read again by its path. A change is acted on
// only when the bytes differ from the last ones read (a touch, or the swap's other events, do nothing).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../config';
import { loadAccessAuditFiles } from '../config/rules-files';
import { MeshauditError } from '../errors';
import type { Logger } from '../log';
import { formatViolation } from '../validators';
import { knownTypesOf, type Sidecar } from './sidecar';

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

export class ConfigReloader {
  /** The tail of the chain of reloads: each starts when the one before is done. */
  private last: Promise<void> = Promise.resolve();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastHash: string | undefined;
  private readonly absolute: string | undefined;
  private attach: (sidecar: Sidecar) => void = () => {};
  private readonly sidecar = new Promise<Sidecar>((resolve) => (this.attach = resolve));

  /**
   * Made before the config is loaded at start-up: the bytes it starts from are those start-up reads, or
   * older (then the first look after a change reloads). A reload asked for during start-up waits for it.
   */
  constructor(private readonly opts: ReloaderOptions) {
    this.absolute = opts.configFile === undefined ? undefined : path.resolve(opts.cwd, opts.configFile);
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

  /** Watches the config file's folder; a change of the file's bytes reloads. */
  watch(): void {
    if (this.absolute === undefined) return;
    const dir = path.dirname(this.absolute);
    try {
      this.watcher = fs.watch(dir, { persistent: false }, () => this.changed());
      this.watcher.on('error', (err) =>
        this.opts.log.warn('config file folder can no longer be watched: reload with SIGHUP', { dir, err }),
      );
    } catch (err) {
      this.opts.log.warn('config file folder cannot be watched: reload with SIGHUP', { dir, err });
    }
  }

  close(): void {
    this.watcher?.close();
    clearTimeout(this.timer);
  }

  private changed(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const hash = this.hash();
      // Gone for a moment (between the renames of a swap), or the same bytes: nothing to do.
      if (hash === undefined || hash === this.lastHash) {
        this.opts.log.debug('config file folder changed; the file is the same: nothing to reload', {
          file: this.absolute,
        });
        return;
      }
      void this.reload('the config file changed');
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  /** SHA-256 of the config file's bytes; undefined when it cannot be read. */
  private hash(): string | undefined {
    if (this.absolute === undefined) return undefined;
    try {
      return createHash('sha256').update(fs.readFileSync(this.absolute)).digest('hex');
    } catch {
      return undefined;
    }
  }

  private async reloadNow(sidecar: Sidecar, why: string): Promise<void> {
    const { log } = this.opts;
    log.debug('config reload started', { why, file: this.absolute });
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
