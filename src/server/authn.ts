// Who is calling, and may they: the one place where a gRPC call becomes a principal (src/auth) and a
// permission is checked. Credentials, in this order: a client certificate verified in the TLS handshake
// (mapped by meshaudit.auth.certificateIdentities); a bearer token in the `authorization` metadata
// (meshaudit.auth.tokensFile); a loopback caller with no credential is the admin while
// meshaudit.auth.localhostIsAdmin is on (Kong Mesh's localhost rule). Anyone else is refused.
import * as fs from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { type CertificateNames, certificateNames, certificatePrincipal } from '../auth/certificates';
import {
  ADMIN_GROUP,
  covers,
  holds,
  isLoopback,
  LOCALHOST_ADMIN,
  type Permission,
  type Principal,
} from '../auth/principal';
import { indexTokens, type TokenIndex, tokenPrincipal } from '../auth/tokens';
import type { AuthConfig, TlsConfig, UnixSocketConfig } from '../config';
import { readTokensFile, TokensFileError } from '../config/tokens-file';
import { PermissionDeniedError, UnauthenticatedError } from '../errors';
import { type Logger, RateLimitedWarning } from '../log';
import type { Metrics } from '../metrics';

/**
 * The metadata key that says which transport a call came by: set on every call by the server when a
 * Unix socket is configured (src/server/grpc-server.ts), over whatever a client sent in it.
 */
export const TRANSPORT_KEY = 'meshaudit-transport';

/** How often the tokens file is looked at for a change (a changed file is read again). */
const TOKENS_RECHECK_MS = 1000;
/** A denial of the same kind is logged at most once in this long; the others are counted in the next line. */
const DENIAL_LOG_INTERVAL_MS = 10_000;

/** The part of a call authentication reads: its metadata, its peer and its verified client certificate. */
export interface CallCredentials {
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  getAuthContext?(): { sslPeerCertificate?: PeerCertificate } | null;
}

/** A request's credentials as a transport finds them, for principalOf(). */
export interface RequestCredentials {
  /** The client certificate the TLS handshake verified; undefined: none (or not verified). */
  readonly certificate?: PeerCertificate;
  /** Every `authorization` value the request carries. */
  readonly authorization: readonly string[];
  /** The peer, as `host:port` (`[::1]:port` or `::1:port` for IPv6): the localhost rule reads it. */
  readonly peer: string;
  /** It came through the Unix socket: set by the server only (TRANSPORT_KEY), never from what a client sent. */
  readonly unixSocket?: boolean;
  /**
   * Every caller must present a client certificate (meshaudit.grpc.tls.clientAuth: require): the
   * localhost rule does not apply. gRPC's handshake refuses such a caller before it is asked; the
   * admin says so here, so that a loopback process is not its admin where it could not call gRPC.
   */
  readonly certificateRequired?: boolean;
  /** Where the authorization was looked for, for the message: gRPC `metadata` (default) or an HTTP `header`. */
  readonly carrier?: 'metadata' | 'header';
}

/** A gRPC call's credentials. */
function grpcCredentials(call: CallCredentials): RequestCredentials {
  return {
    // grpc-js shows a client certificate only once the handshake verified it against meshaudit.grpc.tls.clientCaFile.
    certificate: call.getAuthContext?.()?.sslPeerCertificate,
    authorization: call.metadata.get('authorization').map(String),
    peer: call.getPeer(),
    unixSocket: call.metadata.get(TRANSPORT_KEY)[0] === 'unix-socket',
  };
}

function describe(names: CertificateNames): string {
  const parts = [
    ...(names.commonName === undefined ? [] : [`CN ${names.commonName}`]),
    ...names.uris.map((u) => `URI ${u}`),
    ...names.dnsNames.map((d) => `DNS ${d}`),
  ];
  return parts.length === 0 ? 'no names' : parts.join(', ');
}

/** The permission label of a refusal for want of a credential (meshaudit_calls_denied_total). */
const NO_CREDENTIAL = 'authenticated';

export interface AuthenticatorOptions {
  now?: () => number;
  /** Where refusals are counted, by the permission the caller lacked; none: not counted (--check-config). */
  metrics?: Pick<Metrics, 'callsDenied'>;
}

export class Authenticator {
  private tokens: TokenIndex = new Map();
  private readonly refusals: RateLimitedWarning;
  private readonly metrics: Pick<Metrics, 'callsDenied'> | undefined;

  /** The principal of the Unix socket's callers (meshaudit.grpc.unixSocket); undefined: no socket. */
  private readonly unixCaller: Principal | undefined;

  constructor(
    private config: AuthConfig,
    private readonly log: Logger,
    unixSocket?: UnixSocketConfig,
    opts: AuthenticatorOptions = {},
  ) {
    this.refusals = new RateLimitedWarning(log, DENIAL_LOG_INTERVAL_MS, opts.now);
    this.metrics = opts.metrics;
    this.unixCaller =
      unixSocket === undefined
        ? undefined
        : {
            name: unixSocket.user,
            groups: unixSocket.groups,
            ...(unixSocket.zones === undefined ? {} : { zones: unixSocket.zones }),
            via: 'unix-socket',
          };
    // At start-up a tokens file that cannot be used stops the sidecar (naming it): read it now.
    if (config.tokensFile !== undefined) this.tokens = readTokens(config.tokensFile);
    this.watchTokens();
  }

  private watchTokens(): void {
    const file = this.config.tokensFile;
    // Polled by stat on libuv's thread pool: no call waits on it, and an edit in place, a rename over
    // it (an atomic write) and a new inode are all seen.
    if (file !== undefined)
      fs.watchFile(file, { interval: TOKENS_RECHECK_MS, persistent: false }, () => this.reloadTokens(file));
  }

  /**
   * A new meshaudit.auth (a config reload). Another tokensFile is read now, and a file that cannot be
   * used throws TokensFileError naming it; nothing changes until the returned commit is called, which
   * swaps the config and the tokens together, so that no call sees one without the other.
   */
  prepare(next: AuthConfig): () => void {
    const file = next.tokensFile;
    const tokens = file === this.config.tokensFile ? undefined : file === undefined ? new Map() : readTokens(file);
    return () => {
      if (tokens !== undefined) {
        this.close();
        this.tokens = tokens;
      }
      this.config = next;
      if (tokens !== undefined) this.watchTokens();
    };
  }

  /** Stops watching the tokens file. */
  close(): void {
    if (this.config.tokensFile !== undefined) fs.unwatchFile(this.config.tokensFile);
  }

  /** Whether any caller must present a credential: false means every local process is the admin. */
  authenticates(listen: {
    tls: TlsConfig | undefined;
    grpcAddress: string;
    admin: { readonly address: string | undefined };
  }): boolean {
    // The localhost rule needs a TCP port a process of this host can reach without a credential: the
    // gRPC port, or the admin's. With clientAuth: require it applies on neither (see principalOf).
    const tcp = listen.grpcAddress !== 'off' || listen.admin.address !== undefined;
    if (!tcp || listen.tls?.clientAuth === 'require') return true;
    return this.config.tokensFile !== undefined || !this.config.localhostIsAdmin;
  }

  /** The caller of `call` if its groups hold `permission`; throws UnauthenticatedError or PermissionDeniedError. */
  authorize(call: CallCredentials, permission: Permission, rpc: string): Principal {
    const caller = this.principalOf(grpcCredentials(call), rpc);
    this.require(caller, permission, rpc);
    return caller;
  }

  /** Throws PermissionDeniedError (logged, counted) unless one of the caller's groups holds `permission` for `what`. */
  require(caller: Principal, permission: Permission, what: string): void {
    if (holds(caller, permission, this.config.permissions)) return;
    this.denied('permission', permission, what, { caller: caller.name, permission });
    throw new PermissionDeniedError(
      `${caller.name} may not call ${what}: it needs the ${permission} permission (meshaudit.auth.permissions.${permission})`,
    );
  }

  /** Refuses a stream whose caller may not stream for `zone`/`instance`, before it takes anything over. */
  authorizeIdentifier(caller: Principal, zone: string, instance: string): void {
    if (covers(caller, zone, instance)) return;
    this.denied('identifier', 'stream', 'StreamEvents', { caller: caller.name, zone, instance });
    const scope = [
      caller.zones === undefined ? '' : `zones ${caller.zones.join(', ')}`,
      caller.instances === undefined ? '' : `instances ${caller.instances.join(', ')}`,
    ].filter((x) => x !== '');
    throw new PermissionDeniedError(
      `${caller.name} may not stream for ${zone}/${instance}: its credential covers only ${scope.join(' and ')}`,
    );
  }

  /**
   * Who is calling `what`, from the credentials any transport finds (gRPC's metadata, the admin's HTTP
   * headers): a verified client certificate, a bearer token, the Unix socket, the localhost rule, in
   * this order. Throws UnauthenticatedError (logged, counted) when none of them names a caller.
   */
  principalOf(request: RequestCredentials, what: string): Principal {
    const certificate = request.certificate;
    if (certificate !== undefined) {
      // A subject with several CNs is not a name a rule can mean: none is taken.
      const cn = certificate.subject?.CN;
      const names = certificateNames(typeof cn === 'string' ? cn : undefined, certificate.subjectaltname);
      const caller = certificatePrincipal(names, this.config.certificateIdentities);
      if (caller !== undefined) return caller;
      this.denied('certificate', NO_CREDENTIAL, what, { names, peer: request.peer });
      throw new UnauthenticatedError(
        `the client certificate (${describe(names)}) maps to no identity in meshaudit.auth.certificateIdentities`,
      );
    }
    const carrier = request.carrier ?? 'metadata';
    const authorization = request.authorization;
    if (authorization.length > 0) {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization[0]);
      if (m === null || authorization.length > 1) {
        this.denied('malformed', NO_CREDENTIAL, what, { peer: request.peer });
        throw new UnauthenticatedError(`the authorization ${carrier} must be one "Bearer <token>"`);
      }
      const caller = tokenPrincipal(this.tokens, m[1]);
      if (caller === undefined) {
        this.denied('token', NO_CREDENTIAL, what, { peer: request.peer });
        throw new UnauthenticatedError('the bearer token is not valid (unknown, or revoked)');
      }
      return caller;
    }
    // Trusted only when the server tags the transport (a socket is configured), so a client cannot claim it.
    if (this.unixCaller !== undefined && request.unixSocket === true) return this.unixCaller;
    if (this.config.localhostIsAdmin && request.certificateRequired !== true && isLoopback(request.peer)) {
      return { name: LOCALHOST_ADMIN, groups: [ADMIN_GROUP], via: 'localhost' };
    }
    this.denied('anonymous', NO_CREDENTIAL, what, { peer: request.peer });
    throw new UnauthenticatedError(
      `a credential is required: a bearer token in the authorization ${carrier} (meshaudit token add)`,
    );
  }

  /** The file changed: read again; a file that cannot be used (half-written, broken) keeps the tokens in force. */
  private reloadTokens(file: string): void {
    try {
      this.tokens = indexTokens(readTokensFile(file));
      this.log.info('tokens file read again', { file, tokens: this.tokens.size });
    } catch (e) {
      this.log.error('tokens file changed but cannot be used; the tokens in force are kept', {
        file,
        err: (e as Error).message,
      });
    }
  }

  /** Counts and logs a refused call: `permission` is what it lacked (NO_CREDENTIAL: any credential). */
  private denied(kind: string, permission: string, rpc: string, fields: Record<string, unknown>): void {
    this.metrics?.callsDenied.labels(permission).inc();
    this.refusals.warn(kind, 'call refused', { kind, rpc, ...fields });
  }
}

/** The tokens of `file`, or a TokensFileError naming it and its key. */
function readTokens(file: string): TokenIndex {
  try {
    return indexTokens(readTokensFile(file));
  } catch (e) {
    if (e instanceof TokensFileError) throw new TokensFileError(`${e.message} (meshaudit.auth.tokensFile)`);
    throw e;
  }
}
