// `meshaudit emit`: streams a file of events (JSON lines) through AuditClient, as a control plane would:
// batches on StreamEvents, resumed after a reconnect, acknowledged only once written. A progress bar on a
// terminal (plain lines otherwise), then a summary: recorded, skipped, and the refused events by line.
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { SingleBar } from 'cli-progress';
import { AuditClient, isPermanent, RejectedEventError, type SendResult } from '../client/audit-client';
import { auditServiceClient } from '../client/services';
import type { AuditEvent } from '../events/event';
import { formatViolation, Violations } from '../validators';
import { checkEvent, eventLines } from './event-json';
import {
  CLIENT_HELP,
  CLIENT_OPTIONS,
  CLIENT_SYNOPSIS,
  COMMON_OPTIONS,
  connect,
  EXIT_OK,
  EXIT_REFUSED,
  EXIT_REFUSED_CALLER,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  oneFile,
  type OptionSpecs,
  readInput,
  startClientCommand,
  TOKEN_ENV,
  unreachable,
} from './command-line';

const COMMAND = 'meshaudit emit';
/** The sidecar's default zone (meshaudit.zone). */
const DEFAULT_ZONE = 'default';
/** How often the plain progress line is written when standard error is not a terminal. */
const PLAIN_PROGRESS_INTERVAL_MS = 1_000;

const SYNOPSIS = `${COMMAND} [--zone ZONE] [--instance NAME] ${CLIENT_SYNOPSIS} [FILE|-]`;
export const EMIT_USAGE = `Usage: ${SYNOPSIS}

Streams the events of FILE or standard input ("-" or no FILE; one JSON object per line, the Event
message's JSON form, as meshaudit record reads them) to the sidecar with AuditService.StreamEvents,
through the client a control plane embeds (AuditClient: batches, a bounded queue, reconnects that resume
where the sidecar's acknowledgements end). Shows a progress bar on a terminal (plain lines on stderr
otherwise), then prints a summary: events recorded, skipped (no rule covers them) and refused, by line.
  --zone ZONE           the identifier's zone: the sidecar's meshaudit.zone (default "${DEFAULT_ZONE}")
  --instance NAME       the identifier's instance (default "emit-" and this host's name); the sidecar
                        numbers events per identifier, so a second run continues the first's sequence
${CLIENT_HELP}
  --help                print this help and exit
  --version             print the version and exit
Exit codes:
  0  every event was accepted (recorded or skipped)
  1  at least one event was refused (not JSON, unknown field, wrong type, or rejected by the sidecar)
  2  invalid flags, or a file cannot be read: nothing was sent
  3  no sidecar answers on the address: nothing was sent
  4  the sidecar refused the stream (another zone, an invalid identifier, UNAUTHENTICATED,
     PERMISSION_DENIED): the rest was not sent`;

const OPTIONS = {
  ...CLIENT_OPTIONS,
  zone: { type: 'string' },
  instance: { type: 'string' },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpecs;

/** What became of the events, for the summary. */
interface Tally {
  recorded: number;
  skipped: number;
  /** Recorded or skipped: the acknowledgement of a batch with both does not say which. */
  handled: number;
  /** Accepted before (a resend after a lost acknowledgement). */
  duplicate: number;
  /** Line number -> why. */
  refused: Map<number, string[]>;
}

/** Runs `meshaudit emit`; returns the exit code. */
export async function runEmitCommand(argv: readonly string[]): Promise<number> {
  const started = startClientCommand(argv, {
    name: COMMAND,
    synopsis: SYNOPSIS,
    usage: EMIT_USAGE,
    options: OPTIONS,
    read: (parsed) => ({ parsed, file: oneFile(parsed.positionals) }),
  });
  if (typeof started === 'number') return started;
  const { flags, credentials } = started;
  const { parsed, file } = started.args;
  const text = readInput(COMMAND, file);
  if (text === undefined) return EXIT_USAGE;
  // The AuditClient waits out an absent sidecar with backoff, as a control plane must; a person at a
  // terminal is told at once instead.
  const probe = auditServiceClient(flags.address, credentials.channel);
  const reachable = await connect(probe);
  probe.close();
  if (!reachable) {
    process.stderr.write(`${unreachable(COMMAND, flags.address)}\n`);
    return EXIT_UNREACHABLE;
  }

  const tally: Tally = { recorded: 0, skipped: 0, handled: 0, duplicate: 0, refused: new Map() };
  const toSend: Array<{ line: number; event: AuditEvent }> = [];
  for (const { line, text: json } of eventLines(text)) {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (e) {
      tally.refused.set(line, [`not JSON: ${(e as Error).message}`]);
      continue;
    }
    const problems = new Violations();
    const event = checkEvent(value, problems);
    if (problems.isEmpty) toSend.push({ line, event: event as unknown as AuditEvent });
    else tally.refused.set(line, problems.list.map(formatViolation));
  }

  const client = new AuditClient({
    address: flags.address,
    identifier: {
      zone: (parsed.values.zone as string | undefined) ?? DEFAULT_ZONE,
      instance: (parsed.values.instance as string | undefined) ?? `emit-${os.hostname()}`,
    },
    credentials: credentials.channel,
    token: credentials.token,
  });
  const progress = new Progress(toSend.length);
  let streamRefused: Error | undefined;
  const settle = (line: number, p: Promise<SendResult>): Promise<void> =>
    p.then(
      (r) => {
        tally[r.outcome]++;
        progress.acknowledged();
      },
      (err: Error) => {
        if (err instanceof RejectedEventError) {
          tally.refused.set(line, [err.reason]);
          progress.acknowledged();
        } else if (streamRefused === undefined) {
          streamRefused = err;
        }
      },
    );
  const pending: Array<Promise<void>> = [];
  for (const { line, event } of toSend) {
    if (streamRefused !== undefined) break;
    const settled = settle(line, client.send(event));
    pending.push(settled);
    // The queue is full: wait for this event's acknowledgement, which makes room (backpressure).
    if (client.blocked > 0) await settled;
  }
  await Promise.all(pending);
  await client.close().catch((err: Error) => {
    if (streamRefused === undefined) streamRefused = err;
  });
  progress.stop();

  if (streamRefused !== undefined) {
    const err = streamRefused as Partial<grpc.ServiceError>;
    const code = typeof err.code === 'number' ? `${grpc.status[err.code]}: ` : '';
    process.stderr.write(`${COMMAND}: the sidecar refused the stream: ${code}${err.details ?? err.message}\n`);
    if (err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED)
      process.stderr.write(
        `${COMMAND}: a token: --token-file or ${TOKEN_ENV}; a client certificate: --cacert --cert --key\n`,
      );
  }
  process.stdout.write(summary(tally, toSend.length - progress.done));
  if (streamRefused !== undefined) return isPermanent(streamRefused) ? EXIT_REFUSED_CALLER : EXIT_UNREACHABLE;
  return tally.refused.size > 0 ? EXIT_REFUSED : EXIT_OK;
}

function summary(t: Tally, unacknowledged: number): string {
  const counts = [`${t.recorded} recorded`, `${t.skipped} skipped`];
  if (t.handled > 0) counts.push(`${t.handled} recorded or skipped (their batches had both)`);
  if (t.duplicate > 0) counts.push(`${t.duplicate} duplicate (accepted before)`);
  counts.push(`${t.refused.size} refused`);
  if (unacknowledged > 0) counts.push(`${unacknowledged} not acknowledged`);
  const lines = [...t.refused.entries()]
    .sort(([a], [b]) => a - b)
    .flatMap(([line, reasons]) => reasons.map((r) => `line ${line}: ${r}\n`));
  return `${counts.join(', ')}\n${lines.join('')}`;
}

/**
 * Events acknowledged of the total, events/s and those remaining: a bar redrawn in place when standard
 * error is a terminal, a plain line each second otherwise (a log or a pipe keeps every line).
 */
class Progress {
  /** Events acknowledged (accepted or rejected by the sidecar). */
  done = 0;
  private readonly startMs = Date.now();
  private readonly bar: SingleBar | undefined;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly total: number) {
    if (process.stderr.isTTY) {
      this.bar = new SingleBar({
        stream: process.stderr,
        format: '{bar} {value}/{total} acknowledged | {rate} events/s | {remaining} remaining',
        hideCursor: true,
      });
      this.bar.start(total, 0, this.payload());
    } else {
      this.timer = setInterval(() => this.line(), PLAIN_PROGRESS_INTERVAL_MS);
      this.timer.unref();
    }
  }

  acknowledged(): void {
    this.done++;
    this.bar?.update(this.done, this.payload());
  }

  stop(): void {
    if (this.bar !== undefined) {
      this.bar.update(this.done, this.payload());
      this.bar.stop();
    } else {
      clearInterval(this.timer);
      this.line();
    }
  }

  private payload(): { rate: number; remaining: number } {
    const seconds = (Date.now() - this.startMs) / 1000;
    return { rate: seconds > 0 ? Math.round(this.done / seconds) : 0, remaining: this.total - this.done };
  }

  private line(): void {
    const { rate, remaining } = this.payload();
    process.stderr.write(
      `${COMMAND}: ${this.done}/${this.total} acknowledged, ${rate} events/s, ${remaining} remaining\n`,
    );
  }
}
