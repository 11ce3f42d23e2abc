// The admin HTTP listener, in Envoy's conventions (meshaudit.admin.address): /ready, /server_info,
// /config_dump, /stats, /stats/prometheus to read; /healthcheck/fail, /healthcheck/ok, /reopen_logs to
// act, POST only. Callers are who the gRPC port says they are (src/server/authn.ts): a bearer token, a
// verified client certificate, or a loopback peer while meshaudit.auth.localhostIsAdmin is on; reading
// needs the `read` permission, acting the `admin` permission. On a non-loopback address with
// meshaudit.grpc.tls it serves HTTPS with the gRPC certificate (read again when it changes).
//
// The probe listener (meshaudit.admin.probeAddress) serves only GET /ready and GET /stats/prometheus,
// without authentication: the kubelet and Prometheus cannot present a token, and neither path shows
// config or changes anything. docs/admin.md has every endpoint with its answer.
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { TLSSocket } from 'node:tls';
import { isLoopback, type Permission } from '../auth/principal';
import type { AdminConfig, Config, TlsConfig } from '../config/types';
import { PermissionDeniedError, UnauthenticatedError } from '../errors';
import { type Logger, RateLimitedWarning } from '../log';
import type { Metrics } from '../metrics';
import type { ForwarderStatus } from '../forward/nats-forwarder';
import type { Authenticator } from '../server/authn';
import { listenError, splitHostPort } from '../server/grpc-server';
import type { ServingState } from '../server/serving-state';
import type { TlsFiles } from '../server/tls';

/**
 * Connections open at once; more are refused as they come. The admin expects an operator's curl and a
 * scraper or two; the probe listener, on the pod's address, is reachable by anyone in the cluster, and
 * idle connections must not crowd the kubelet's probe out.
 */
const MAX_CONNECTIONS = 32;
const MAX_PROBE_CONNECTIONS = 512;
/** A client that sends its request slowly, or nothing, holds a connection no longer than this. */
const REQUEST_TIMEOUT_MS = 5_000;
/** How often Node looks for connections past those timeouts (its default, 30 s, would let them linger). */
const TIMEOUT_CHECK_MS = 1_000;
/** A scrape of the probe listener is served from a copy at most this old: one client cannot keep the loop busy. */
const PROBE_SCRAPE_CACHE_MS = 1_000;
/** An unexpected failure of a request is logged at most once in this long per path. */
const FAILURE_LOG_INTERVAL_MS = 10_000;

/** What the admin reads from the running sidecar once it has started (see AdminServer.attach). */
export interface AdminSubject {
  /** Each control plane's identifier with its last accepted and last acknowledged sequence. */
  identifiers(): ReadonlyArray<{ identifier: string; accepted: number; committed: number }>;
  /** The AccessAudits in force. */
  accessAudits(): readonly unknown[];
  /** Where they are kept, and why the store cannot take changes now (degraded). */
  store(): { type: string; location: string; degraded: string | undefined };
  /** Each forwarder's state, lag and stream (meshaudit.forwarders). */
  forwarders(): readonly ForwarderStatus[];
  /** Reopens every backend's active file (POST /reopen_logs), resolving with what each file is now. */
  reopenFiles(): Promise<ReadonlyArray<{ file: string; ino: number; size: number }>>;
}

export interface AdminOptions {
  /** The effective config, read at each request: a reload replaces it. */
  config: () => Config;
  version: string;
  serving: ServingState;
  metrics: Metrics;
  auth: Authenticator;
  log: Logger;
  /** The gRPC port's TLS files: the admin serves HTTPS with them on a non-loopback address. */
  tls: TlsFiles | undefined;
  /** The clock of uptime; Date.now by default. */
  now?: () => number;
}

interface Reply {
  status: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
}

interface Route {
  readonly method: 'GET' | 'POST';
  readonly help: string;
  /** What the caller needs on the admin listener (the probe listener asks for nothing). */
  readonly permission: Permission;
  /** Served by the probe listener too. */
  readonly probe?: boolean;
  handle(caller: string): Promise<Reply> | Reply;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json';

function text(status: number, body: string, headers?: Record<string, string>): Reply {
  return { status, body: body.endsWith('\n') ? body : `${body}\n`, contentType: TEXT, headers };
}

/** The store as /server_info shows it: `state` ok or degraded, with the reason. */
function storeInfo(store: ReturnType<AdminSubject['store']>): unknown {
  const { type, location, degraded } = store;
  return degraded === undefined
    ? { type, location, state: 'ok' }
    : { type, location, state: 'degraded', reason: degraded };
}

function json(value: unknown): Reply {
  return { status: 200, body: `${JSON.stringify(value, null, 2)}\n`, contentType: JSON_TYPE };
}

/** The two listeners once bound: their addresses as `host:port` (the port bound, with port 0). */
export class AdminServer {
  private subject: AdminSubject | undefined;
  private readonly startedAtMs: number;
  private readonly now: () => number;
  private readonly routes: ReadonlyMap<string, Route>;
  private readonly failures: RateLimitedWarning;
  /** The probe listener's last scrape, and when it was made (see PROBE_SCRAPE_CACHE_MS). */
  private probeScrape: { atMs: number; reply: Promise<Reply> } | undefined;
  private readonly servers: http.Server[] = [];
  private readonly onTlsUpdate: (() => void) | undefined;
  /** `host:port` of the admin and of the probe listener; undefined: off. */
  address: string | undefined;
  probeAddress: string | undefined;

  /**
   * Binds both listeners. A port in use stops start-up (ListenError, exit 1) naming the key. Until
   * attach(), /ready answers 503 `starting`, and every other path 503 too.
   */
  static async listen(admin: AdminConfig, opts: AdminOptions): Promise<AdminServer> {
    const server = new AdminServer(admin, opts);
    try {
      if (admin.address !== undefined) {
        server.address = await server.bind(admin.address, 'meshaudit.admin.address', false);
      }
      if (admin.probeAddress !== undefined) {
        server.probeAddress = await server.bind(admin.probeAddress, 'meshaudit.admin.probeAddress', true);
      }
    } catch (err) {
      server.close();
      throw err;
    }
    return server;
  }

  private constructor(
    private readonly admin: AdminConfig,
    private readonly opts: AdminOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.startedAtMs = this.now();
    this.routes = this.table();
    this.failures = new RateLimitedWarning(opts.log, FAILURE_LOG_INTERVAL_MS, this.now, 'error');
    const tls = this.httpsFiles();
    if (tls !== undefined) {
      // A new certificate (cert-manager, SIGHUP) reaches the admin's new connections as it reaches gRPC's.
      const update = (): void => {
        for (const s of this.servers) if (s instanceof https.Server) s.setSecureContext(tls.secureContextOptions());
      };
      this.onTlsUpdate = update;
      tls.addIdentityCertificateListener(update);
    }
  }

  /** The sidecar started: the paths that read or act on it are served from now on. */
  attach(subject: AdminSubject): void {
    this.subject = subject;
  }

  /** Closes both listeners and every connection at once. */
  close(): void {
    if (this.onTlsUpdate !== undefined) this.opts.tls?.removeIdentityCertificateListener(this.onTlsUpdate);
    for (const s of this.servers.splice(0)) {
      s.close();
      s.closeAllConnections();
    }
  }

  /** The TLS files the admin serves HTTPS with: on a non-loopback address, when the gRPC port has TLS. */
  private httpsFiles(): TlsFiles | undefined {
    const address = this.admin.address;
    return address !== undefined && !isLoopback(address) ? this.opts.tls : undefined;
  }

  private async bind(address: string, key: string, probe: boolean): Promise<string> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.serve(req, res, probe).catch((err) => {
        this.failures.warn(String(req.url).slice(0, 100), 'admin request failed', {
          path: String(req.url).slice(0, 1000),
          err: (err as Error).stack ?? String(err),
        });
        if (!res.headersSent) send(res, text(500, 'internal error (see the sidecar log)'));
        else res.destroy();
      });
    };
    const tls = probe ? undefined : this.httpsFiles();
    const tlsConfig: TlsConfig | undefined = tls === undefined ? undefined : this.opts.config().tls;
    const server =
      tls === undefined
        ? http.createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_MS }, handler)
        : https.createServer(
            {
              connectionsCheckingInterval: TIMEOUT_CHECK_MS,
              ...tls.secureContextOptions(),
              // A client certificate is asked for where gRPC asks for one, and required where gRPC requires it.
              requestCert: tlsConfig?.clientCaFile !== undefined,
              rejectUnauthorized: tlsConfig?.clientAuth === 'require',
            },
            handler,
          );
    server.maxConnections = probe ? MAX_PROBE_CONNECTIONS : MAX_CONNECTIONS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = REQUEST_TIMEOUT_MS;
    this.servers.push(server);
    const { host, port } = splitHostPort(address);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw listenError(address, key, err);
    }
    return `${address.replace(/:\d+$/, '')}:${(server.address() as net.AddressInfo).port}`;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, probe: boolean): Promise<void> {
    // No path reads a body: whatever is sent is discarded, so that the connection can be reused.
    req.resume();
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://admin').pathname;
    } catch {
      // A request target no URL can be made of (`http://[`): the client's mistake, not the sidecar's.
      return send(res, text(400, 'the request target is not a path'));
    }
    const route = this.routes.get(path);
    // The probe listener knows its two GETs and nothing else, not even another method on them.
    if (route === undefined || (probe && (route.probe !== true || req.method !== route.method))) {
      return send(res, text(404, `no such path: ${path}\n${this.help(probe)}`));
    }
    if (req.method !== route.method) {
      return send(res, text(405, `${path} answers ${route.method} only`, { allow: route.method }));
    }
    let caller = 'probe';
    if (!probe) {
      const denied = this.authorize(req, route.permission, `${route.method} ${path}`);
      if (typeof denied !== 'string') return send(res, denied);
      caller = denied;
    }
    if (this.subject === undefined && path !== '/ready' && path !== '/stats/prometheus' && path !== '/help') {
      return send(res, text(503, 'starting'));
    }
    if (probe && path === '/stats/prometheus') return send(res, await this.cachedScrape(route));
    send(res, await route.handle(caller));
  }

  private cachedScrape(route: Route): Promise<Reply> {
    const now = this.now();
    if (this.probeScrape === undefined || now - this.probeScrape.atMs >= PROBE_SCRAPE_CACHE_MS) {
      this.probeScrape = { atMs: now, reply: Promise.resolve(route.handle('probe')) };
    }
    return this.probeScrape.reply;
  }

  /** The caller's name, or the 401/403 reply (logged and counted as the gRPC port's refusals are). */
  private authorize(req: http.IncomingMessage, permission: Permission, what: string): string | Reply {
    const socket = req.socket;
    const header = req.headersDistinct.authorization ?? [];
    try {
      const caller = this.opts.auth.principalOf(
        {
          // Only a certificate the handshake verified against meshaudit.grpc.tls.clientCaFile names a caller.
          certificate: socket instanceof TLSSocket && socket.authorized ? socket.getPeerCertificate() : undefined,
          authorization: header,
          peer: `${socket.remoteAddress}:${socket.remotePort}`,
          certificateRequired: this.opts.config().tls?.clientAuth === 'require',
          carrier: 'header',
        },
        what,
      );
      this.opts.auth.require(caller, permission, what);
      return caller.name;
    } catch (err) {
      // Counted (meshaudit_calls_denied_total) and logged by the Authenticator, as gRPC's refusals are.
      if (err instanceof UnauthenticatedError) {
        return text(401, err.message, { 'www-authenticate': 'Bearer' });
      }
      if (err instanceof PermissionDeniedError) {
        return text(403, err.message);
      }
      throw err;
    }
  }

  private help(probe: boolean): string {
    const lines = [...this.routes]
      .filter(([, r]) => !probe || r.probe === true)
      .map(([path, r]) => `  ${r.method} ${path}: ${r.help}`);
    return `${probe ? 'probe' : 'admin'} commands are:\n${lines.join('\n')}\n`;
  }

  private table(): ReadonlyMap<string, Route> {
    const { serving, metrics, log } = this.opts;
    const subject = (): AdminSubject => this.subject as AdminSubject;
    return new Map<string, Route>([
      [
        '/ready',
        {
          method: 'GET',
          permission: 'read',
          probe: true,
          help: 'LIVE (200) when the sidecar takes and writes events, else 503 and why (as gRPC health)',
          handle: () => {
            const reason = serving.reason();
            if (reason !== undefined) return text(503, reason);
            // Still 200: every event is taken and written; the body says what is missing.
            return text(200, serving.degraded === undefined ? 'LIVE' : `LIVE (degraded: ${serving.degraded})`);
          },
        },
      ],
      [
        '/server_info',
        {
          method: 'GET',
          permission: 'read',
          help: 'version, zone, state, uptime and the acknowledged sequence of each control plane (JSON)',
          handle: () => json(this.serverInfo()),
        },
      ],
      [
        '/config_dump',
        {
          method: 'GET',
          permission: 'read',
          help: 'the effective configuration and the AccessAudits in force (JSON; no secret is ever shown)',
          handle: () => json({ config: dumpConfig(this.opts.config()), accessAudits: subject().accessAudits() }),
        },
      ],
      [
        '/stats',
        {
          method: 'GET',
          permission: 'read',
          help: 'every metric sample, one "name{labels}: value" line each',
          handle: async () => text(200, statsText(await metrics.registry.getMetricsAsJSON())),
        },
      ],
      [
        '/stats/prometheus',
        {
          method: 'GET',
          permission: 'read',
          probe: true,
          help: 'the metrics in the Prometheus text format',
          handle: async () => ({ status: 200, body: await metrics.prometheus(), contentType: metrics.contentType }),
        },
      ],
      [
        '/healthcheck/fail',
        {
          method: 'POST',
          permission: 'admin',
          help: 'fails /ready and gRPC health by hand (calls are still taken) until /healthcheck/ok',
          handle: (caller) => {
            serving.setHealthcheckFailed(true);
            log.warn('health check failed by hand: /ready and gRPC health say NOT_SERVING until /healthcheck/ok', {
              caller,
            });
            return text(200, 'OK');
          },
        },
      ],
      [
        '/healthcheck/ok',
        {
          method: 'POST',
          permission: 'admin',
          help: 'ends a /healthcheck/fail',
          handle: (caller) => {
            if (serving.healthcheckFailed) log.info('health check passes again (POST /healthcheck/ok)', { caller });
            serving.setHealthcheckFailed(false);
            return text(200, 'OK');
          },
        },
      ],
      [
        '/reopen_logs',
        {
          method: 'POST',
          permission: 'admin',
          help: 'reopens the active audit files at their paths (after they were moved away)',
          handle: async () => {
            let files: Awaited<ReturnType<AdminSubject['reopenFiles']>>;
            try {
              files = await subject().reopenFiles();
            } catch (err) {
              return text(500, `can't reopen the audit files: ${(err as Error).message}`);
            }
            return text(200, files.map((f) => `reopened ${f.file} (inode ${f.ino}, ${f.size} bytes)`).join('\n'));
          },
        },
      ],
      [
        '/help',
        {
          method: 'GET',
          permission: 'read',
          help: 'this list',
          handle: () => text(200, this.help(false)),
        },
      ],
    ]);
  }

  private serverInfo(): unknown {
    const config = this.opts.config();
    const reason = this.opts.serving.reason();
    const identifiers: Record<string, { ackedSeq: number; acceptedSeq: number }> = {};
    for (const p of this.subject?.identifiers() ?? []) {
      identifiers[p.identifier] = { ackedSeq: p.committed, acceptedSeq: p.accepted };
    }
    return {
      version: this.opts.version,
      zone: config.zone,
      state: reason === undefined ? 'LIVE' : reason.replace(/:.*/, '').replace(/ /g, '_').toUpperCase(),
      ...(reason === undefined ? {} : { reason }),
      uptimeSeconds: Math.floor((this.now() - this.startedAtMs) / 1000),
      ...(this.subject === undefined ? {} : { store: storeInfo(this.subject.store()) }),
      identifiers,
      ...(config.forwarders.length === 0 ? {} : { forwarders: this.subject?.forwarders() ?? [] }),
    };
  }
}

function send(res: http.ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? TEXT,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...reply.headers,
  });
  res.end(reply.body);
}

/** Keys whose values would be secrets were a config ever to hold one inline: shown as "[redacted]". */
const SECRET_KEY = /(secret|password|passphrase|privatekey|token)$/i;

/**
 * The config as /config_dump shows it. It holds no secret itself: the tokens file and the TLS key are
 * named by path and never read into it; a key that could hold a secret inline is redacted all the same.
 * Modes read as octal, as an operator writes them; a key that is off reads null.
 */
export function dumpConfig(config: Config): unknown {
  return JSON.parse(
    JSON.stringify(config, (key, value) => {
      // A key that is off (tls, unixSocket, tokensFile, probeAddress) is shown as null, not left out.
      if (value === undefined) return null;
      if (SECRET_KEY.test(key) && typeof value === 'string') return '[redacted]';
      if ((key === 'mode' || key === 'file' || key === 'dir') && typeof value === 'number') {
        return `0${value.toString(8)}`;
      }
      return value;
    }),
  );
}

/** Envoy's /stats: one `name{labels}: value` line per sample, sorted. */
export function statsText(
  metrics: ReadonlyArray<{
    name: string;
    values: ReadonlyArray<{ value: number; labels: Partial<Record<string, string | number>>; metricName?: string }>;
  }>,
): string {
  const lines: string[] = [];
  for (const m of metrics) {
    for (const v of m.values) {
      const labels = Object.entries(v.labels).map(([k, l]) => `${k}=${JSON.stringify(String(l))}`);
      lines.push(`${v.metricName ?? m.name}${labels.length > 0 ? `{${labels.join(',')}}` : ''}: ${v.value}`);
    }
  }
  return `${lines.sort().join('\n')}\n`;
}
