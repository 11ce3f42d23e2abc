// A minimal structured logger: one JSON object per line on stderr, so that the sidecar's own log
// never mixes with audit records and log collectors parse it without configuration.

export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

function errorFields(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return fields;
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? v.message : v;
  return out;
}

export function jsonLogger(
  write: (line: string) => void = (l) => process.stderr.write(l),
  now: () => Date = () => new Date(),
): Logger {
  const emit = (level: string, msg: string, fields?: LogFields): void => {
    write(`${JSON.stringify({ time: now().toISOString(), level, msg, ...errorFields(fields) })}\n`);
  };
  return {
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

/** For tests that do not read the log. */
export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * A warning that can repeat without end (a client retrying in a loop, a flood of refused calls): at
 * most one line per key every `intervalMs`; the next line says how many were left out since the last.
 */
export class RateLimitedWarning {
  private readonly last = new Map<string, { atMs: number; since: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, msg: string, fields: LogFields = {}): void {
    const now = this.now();
    const last = this.last.get(key);
    if (last !== undefined && now - last.atMs < this.intervalMs) {
      last.since++;
      return;
    }
    this.last.set(key, { atMs: now, since: 0 });
    this.log.warn(msg, { ...fields, ...(last?.since ? { alsoSince: last.since } : {}) });
  }
}
