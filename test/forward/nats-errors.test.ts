import { expect } from 'chai';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
// The classes @nats-io/jetstream does not export from its main module (StreamNotFoundError, JetStreamNotEnabled).
import { jserrors } from '@nats-io/jetstream/internal';
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  ProtocolError,
  RequestError,
  TimeoutError,
  UserAuthenticationExpiredError,
} from '@nats-io/transport-node';
import { type NatsFailure, natsFailure } from '../../src/forward/nats-errors';

/** A Node error with its code, as net and tls raise them. */
function nodeError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** What nats.js makes of a server's `-ERR` line (ProtocolHandler.toError: the first that parses it). */
function serverError(text: string): Error {
  return (
    PermissionViolationError.parse(text) ??
    UserAuthenticationExpiredError.parse(text) ??
    AuthorizationError.parse(text) ??
    new ProtocolError(text)
  );
}

/** A request's failure, as nats.js's RequestOne rejects it (anything but a timeout, wrapped). */
function requestFailed(err: Error): Error {
  return new RequestError(err.message, { cause: err });
}

describe('natsFailure (the kind of failure an error of the NATS client is)', () => {
  const refused = nodeError('connect ECONNREFUSED 127.0.0.1:4222', 'ECONNREFUSED');
  const untrusted = nodeError('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  const table: Array<[string, unknown, NatsFailure]> = [
    // Credentials: the server's words, parsed by the client into its classes, or wrapped as text.
    ['Authorization Violation', serverError('Authorization Violation'), { kind: 'credentials' }],
    ['Authentication Timeout', serverError('Authentication Timeout'), { kind: 'credentials' }],
    ['Account Authentication Expired', serverError('Account Authentication Expired'), { kind: 'credentials' }],
    ['User Authentication Expired', serverError('User Authentication Expired'), { kind: 'credentials' }],
    [
      'User authentication revoked (a ProtocolError)',
      serverError('User authentication revoked'),
      { kind: 'credentials' },
    ],
    ['credentials, in a plain error', new Error('connecting: Authorization Violation'), { kind: 'credentials' }],
    // Permissions, with the subject refused.
    [
      'a stream info the user may not ask for',
      requestFailed(serverError('Permissions Violation for Publish to "$JS.API.STREAM.INFO.MESHAUDT"')),
      { kind: 'permission', subject: '$JS.API.STREAM.INFO.MESHAUDT' },
    ],
    [
      'a subscription',
      serverError('Permissions Violation for Subscription to "_INBOX.>"'),
      { kind: 'permission', subject: '_INBOX.>' },
    ],
    [
      'a permission, in a plain error',
      new Error(
        'lost the session: Permissions Violation for Publish to "$JS.API.DIRECT.GET.MESHAUDIT.meshaudit.z.i.view"',
      ),
      { kind: 'permission', subject: '$JS.API.DIRECT.GET.MESHAUDIT.meshaudit.z.i.view' },
    ],
    ['a permission without a subject', new Error('Permissions Violation'), { kind: 'permission', subject: '' }],
    // The stream.
    [
      'JetStream API error 10059',
      new JetStreamApiError({ err_code: JetStreamApiCodes.StreamNotFound, code: 404, description: 'stream not found' }),
      { kind: 'stream-not-found' },
    ],
    [
      "the client's StreamNotFoundError",
      new jserrors.StreamNotFoundError({ err_code: 10059, code: 404, description: 'stream not found' }),
      { kind: 'stream-not-found' },
    ],
    [
      'no stream matches subject',
      jserrors.StreamNotFoundError.fromMessage('no stream matches subject'),
      { kind: 'stream-not-found' },
    ],
    ['stream not found, in a plain error', new Error('stream not found'), { kind: 'stream-not-found' }],
    // JetStream.
    [
      'no responders to the JetStream API',
      new jserrors.JetStreamNotEnabled('jetstream is not enabled', {
        cause: new RequestError('no responders', { cause: new NoRespondersError('$JS.API.INFO') }),
      }),
      { kind: 'jetstream-not-enabled' },
    ],
    [
      'JetStream API error 10039',
      new JetStreamApiError({
        err_code: JetStreamApiCodes.JetStreamNotEnabledForAccount,
        code: 503,
        description: 'jetstream not enabled for account',
      }),
      { kind: 'jetstream-not-enabled' },
    ],
    ['jetstream not enabled, in a plain error', new Error('jetstream not enabled'), { kind: 'jetstream-not-enabled' }],
    // TLS, ahead of the connection error it may be wrapped in.
    ['an untrusted certificate', untrusted, { kind: 'tls' }],
    [
      'an untrusted certificate in a ConnectionError',
      new ConnectionError(untrusted.message, { cause: untrusted }),
      { kind: 'tls' },
    ],
    [
      'a misnamed certificate',
      nodeError("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'),
      { kind: 'tls' },
    ],
    ['a server that requires TLS', serverError('Secure Connection - TLS Required'), { kind: 'tls' }],
    [
      'a client that requires TLS of a server without',
      InvalidArgumentError.format('tls', 'is not available on this server'),
      { kind: 'tls' },
    ],
    // Unreachable.
    ['connection refused', new ConnectionError('connection refused', { cause: refused }), { kind: 'unreachable' }],
    ['a timeout', new TimeoutError(), { kind: 'unreachable' }],
    [
      'a name that does not resolve',
      nodeError('getaddrinfo ENOTFOUND nats.example', 'ENOTFOUND'),
      { kind: 'unreachable' },
    ],
    ['a timeout, in a plain error', new Error('lost the connection to NATS (timeout)'), { kind: 'unreachable' }],
    // The rest.
    [
      'another JetStream API error',
      new JetStreamApiError({ err_code: 10077, code: 400, description: 'maximum messages exceeded' }),
      { kind: 'other' },
    ],
    ['a closed connection', new ClosedConnectionError(), { kind: 'other' }],
    ['a plain error', new Error('no acknowledgement from JetStream in 10 s'), { kind: 'other' }],
    ['not an error', 'oops', { kind: 'other' }],
    ['nothing', undefined, { kind: 'other' }],
  ];
  for (const [name, err, failure] of table) {
    it(`names ${name}: ${failure.kind}`, () => expect(natsFailure(err)).to.deep.equal(failure));
  }

  it('ends at a chain of causes that loops', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(natsFailure(a)).to.deep.equal({ kind: 'other' });
  });
});
