// What kind of failure an error of the NATS client is, for the forwarder (what an operator fixes) and
// `meshaudit query --nats` (what it says and its exit code): each caller has its own wording, this one
// classification. The client's error classes decide first, along the `cause` chain (the client wraps a
// permission violation of a request in a RequestError, a refused connection in a ConnectionError); then
// the words of the servers and the client, for what the forwarder wraps in errors of its own. Pure: it
// looks at errors and nothing else.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import {
  AuthorizationError,
  ConnectionError,
  PermissionViolationError,
  TimeoutError,
  UserAuthenticationExpiredError,
} from '@nats-io/transport-node';

export type NatsFailure =
  /** The server refused the credentials (authorization violation, expired or revoked, too slow). */
  | { readonly kind: 'credentials' }
  /** The user may not publish (or subscribe) to `subject` ('' when the error does not name it). */
  | { readonly kind: 'permission'; readonly subject: string }
  | { readonly kind: 'stream-not-found' }
  /** Not on the server, or not for the user's account. */
  | { readonly kind: 'jetstream-not-enabled' }
  /** No TLS connection: a certificate not trusted or misnamed, or TLS on one side alone. */
  | { readonly kind: 'tls' }
  /** No server answers: refused, unresolved, timed out. */
  | { readonly kind: 'unreachable' }
  | { readonly kind: 'other' };

/** Causes followed at most: a chain that loops ends here. */
const MAX_CAUSES = 8;

/** Node's TLS errors: OpenSSL's codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, DEPTH_ZERO_SELF_SIGNED_CERT...) or ERR_TLS_*. */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|[A-Z_]*CERT|UNABLE_TO_)/;
/** Node's network errors of a server that is not there (nats.js passes all but ECONNREFUSED on as they are). */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * The words, as nats-server and nats.js put them: `Authorization Violation`, `User Authentication Expired`,
 * `User authentication revoked`, `Account Authentication Expired`, `Authentication Timeout`.
 */
const CREDENTIALS_TEXT = /authorization violation|authentication (timeout|expired|revoked)/i;
/** `Permissions Violation for Publish to "<subject>"` (or `Subscription to`). */
const PERMISSION_TEXT = /permissions violation/i;
const PERMISSION_SUBJECT = /(?:Publish|Subscription) to "(\S+)"/i;
/** JetStream's `stream not found`; nats.js's `no stream matches subject`. */
const STREAM_NOT_FOUND_TEXT = /stream not found|no stream matches subject/i;
/** The server's `jetstream not enabled (for account)`; nats.js's `jetstream is not enabled` (no responders). */
const JETSTREAM_NOT_ENABLED_TEXT = /jetstream (is )?not enabled/i;
/** Node's certificate errors; the server's `Secure Connection - TLS Required`; nats.js's `'tls' is not available`. */
const TLS_TEXT = /certificate|SSL routines|TLS required|'tls' is not available/i;
/** nats.js's `connection refused` and `timeout`, and Node's codes in a message. */
const UNREACHABLE_TEXT =
  /connection refused|\btimeout\b|\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)\b/i;

/** Where two kinds are found in one error (a TLS error in a ConnectionError), the first of them is it. */
const PRECEDENCE: readonly NatsFailure['kind'][] = [
  'credentials',
  'permission',
  'stream-not-found',
  'jetstream-not-enabled',
  'tls',
  'unreachable',
];

/** The kind of failure `err` is (anything, as thrown). */
export function natsFailure(err: unknown): NatsFailure {
  const chain = causes(err);
  let found: NatsFailure | undefined;
  for (const e of chain) {
    const failure = byClass(e);
    if (failure !== undefined && (found === undefined || rank(failure) < rank(found))) found = failure;
  }
  return found ?? byText(chain.map((e) => (e instanceof Error ? e.message : String(e))).join('\n'));
}

function rank(failure: NatsFailure): number {
  return PRECEDENCE.indexOf(failure.kind);
}

/** `err` and its causes, outermost first. */
function causes(err: unknown): unknown[] {
  const chain = [err];
  let e = err;
  while (chain.length < MAX_CAUSES && e instanceof Error && e.cause !== undefined && !chain.includes(e.cause)) {
    e = e.cause;
    chain.push(e);
  }
  return chain;
}

function byClass(e: unknown): NatsFailure | undefined {
  if (e instanceof AuthorizationError || e instanceof UserAuthenticationExpiredError) return { kind: 'credentials' };
  if (e instanceof PermissionViolationError) return { kind: 'permission', subject: e.subject };
  if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound)
    return { kind: 'stream-not-found' };
  // nats.js's JetStreamNotEnabled is not exported by @nats-io/jetstream: its name tells it.
  if (
    (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.JetStreamNotEnabledForAccount) ||
    (e instanceof Error && e.name === 'JetStreamNotEnabled')
  )
    return { kind: 'jetstream-not-enabled' };
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TLS_CODE.test(code)) return { kind: 'tls' };
  if (e instanceof ConnectionError || e instanceof TimeoutError) return { kind: 'unreachable' };
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return { kind: 'unreachable' };
  return undefined;
}

function byText(text: string): NatsFailure {
  if (CREDENTIALS_TEXT.test(text)) return { kind: 'credentials' };
  if (PERMISSION_TEXT.test(text)) return { kind: 'permission', subject: PERMISSION_SUBJECT.exec(text)?.[1] ?? '' };
  if (STREAM_NOT_FOUND_TEXT.test(text)) return { kind: 'stream-not-found' };
  if (JETSTREAM_NOT_ENABLED_TEXT.test(text)) return { kind: 'jetstream-not-enabled' };
  if (TLS_TEXT.test(text)) return { kind: 'tls' };
  if (UNREACHABLE_TEXT.test(text)) return { kind: 'unreachable' };
  return { kind: 'other' };
}
