// The sidecar's own log: pino, one JSON object per line on stderr (`level`, `time`, `msg` and fields),
// so that it never mixes with audit records and log collectors parse it without configuration. Lines
// are written synchronously: a line said just before process.exit (a fail-stop, a start-up error) is
// never lost, and the log is a few lines a minute, never a line per event at the default level.
import pino from 'pino';

export type LogFields = Record<string, unknown>;

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** The lowest level written from now on (meshaudit.log.level, changed live by a reload). */
  setLevel(level: LogLevel): void;
  readonly level: LogLevel;
}

// An Error in a field is its message: the errors the sidecar logs by name (EACCES, ENOSPC...) say
// what happened in one line. An unexpected error is logged with its stack by the code that knows it is
// unexpected (src/server/status.ts), as a string.
function plainFields(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return fields;
  let out: LogFields | undefined;
  for (const [k, v] of Object.entries(fields)) {
    if (!(v instanceof Error)) continue;
    out ??= { ...fields };
    out[k] = v.message;
  }
  return out ?? fields;
}

/**
 * A logger writing each line to `write` (stderr by default). `level` is the lowest level written
 * (info by default); `now` fixes the time (tests).
 */
export function jsonLogger(write?: (line: string) => void, opts: { level?: LogLevel; now?: () => Date } = {}): Logger {
  const destination = write === undefined ? pino.destination({ dest: 2, sync: true }) : { write };
  const now = opts.now;
  const p = pino(
    {
      level: opts.level ?? 'info',
      base: undefined,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
      timestamp: now === undefined ? pino.stdTimeFunctions.isoTime : () => `,"time":"${now().toISOString()}"`,
    },
    destination,
  );
  const at =
    (level: LogLevel) =>
    (msg: string, fields?: LogFields): void => {
      const f = plainFields(fields);
      if (f === undefined) p[level](msg);
      else p[level](f, msg);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    setLevel(level) {
      p.level = level;
    },
    get level() {
      return p.level as LogLevel;
    },
  };
}

/** For tests that do not read the log. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  setLevel: () => {},
  level: 'error',
};

/**
 * A line that can repeat without end (a client retrying in a loop, a flood of refused calls): at most
 * one line per key every `intervalMs`; the next line says how many were left out since the last
 * (`alsoSince`). Counting is the metrics' work: this bounds the log only.
 */
export class RateLimitedWarning {
  private readonly last = new Map<string, { atMs: number; since: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
    private readonly level: 'info' | 'warn' | 'error' = 'warn',
  ) {}

  warn(key: string, msg: string, fields: LogFields = {}): void {
    const now = this.now();
    const last = this.last.get(key);
    if (last !== undefined && now - last.atMs < this.intervalMs) {
      last.since++;
      return;
    }
    // Bounded: a key per caller or identifier, and a flood of distinct keys is forgotten in bulk.
    if (this.last.size >= 10_000) this.last.clear();
    this.last.set(key, { atMs: now, since: 0 });
    this.log[this.level](msg, { ...fields, ...(last?.since ? { alsoSince: last.since } : {}) });
  }
}
