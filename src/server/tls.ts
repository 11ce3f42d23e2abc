// TLS on the gRPC port (meshaudit.grpc.tls): the certificate and key, and the CAs of client
// certificates, read from files, checked, and read again when they change (cert-manager rotates them
// in place) or on SIGHUP. A new set is checked whole before it is used: a certificate without its key,
// a key that is not the certificate's, a file cut in the middle of a write, is refused with a log
// line and the set in force stays. (grpc-js would otherwise take it, fail to use it, and refuse every
// new connection.) The key file must not be readable by group or others.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { TlsConfig } from '../config';
import { readFileBytes } from '../config/read-file';
import { MeshauditError } from '../errors';
import type { Logger } from '../log';

/** A certificate chain, key or CA bundle is a few KiB; a CA bundle of every public root, about 250 KiB. */
const TLS_FILE_BYTES = 1024 * 1024;
/** How often the files are looked at for a change. */
const WATCH_INTERVAL_MS = 1000;

/** The TLS files cannot be used at start-up: the message names the file and the key (exit 2). */
export class TlsFilesError extends MeshauditError {
  readonly kind = 'invalid-argument';
  override readonly exitCode = 2;
}

interface TlsSet {
  readonly certificate: Buffer;
  readonly privateKey: Buffer;
  readonly caCertificate: Buffer | undefined;
  /** For the log: the certificate's serial number and when it expires. */
  readonly serial: string;
  readonly validTo: string;
}

type Listener<T> = (update: T | null) => void;

/** Reads and checks the set; throws an Error naming the file and what is wrong. */
function readSet(config: TlsConfig): TlsSet {
  // Bounded, regular files only (a FIFO with no writer would hang start-up), the key readable by its owner alone.
  const read = (file: string, key: string, secret = false): Buffer => {
    try {
      return readFileBytes(file, TLS_FILE_BYTES, { secret });
    } catch (e) {
      throw new Error(`can't read ${file} (meshaudit.grpc.tls.${key}): ${(e as Error).message}`);
    }
  };
  const certificate = read(config.certFile, 'certFile');
  const privateKey = read(config.keyFile, 'keyFile', true);
  const caCertificate = config.clientCaFile === undefined ? undefined : read(config.clientCaFile, 'clientCaFile');
  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(certificate);
  } catch (e) {
    throw new Error(
      `${config.certFile} (meshaudit.grpc.tls.certFile) holds no PEM certificate: ${(e as Error).message}`,
    );
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(privateKey);
  } catch (e) {
    throw new Error(`${config.keyFile} (meshaudit.grpc.tls.keyFile) holds no PEM private key: ${(e as Error).message}`);
  }
  if (!x509.checkPrivateKey(key)) {
    throw new Error(`${config.keyFile} is not the private key of ${config.certFile} (meshaudit.grpc.tls)`);
  }
  try {
    // What the TLS server will do with them: a CA file that holds no certificate fails here, not in a handshake.
    tls.createSecureContext({ cert: certificate, key: privateKey, ca: caCertificate });
  } catch (e) {
    throw new Error(`meshaudit.grpc.tls: the files cannot be used together: ${(e as Error).message}`);
  }
  return { certificate, privateKey, caCertificate, serial: x509.serialNumber, validTo: x509.validTo };
}

/**
 * The TLS files as grpc-js's certificate provider: it hands grpc-js each checked set, and only those.
 * One provider serves both the server's own certificate and the CAs of its clients.
 */
export class TlsFiles implements grpc.experimental.CertificateProvider {
  private current: TlsSet;
  private readonly identityListeners = new Set<Listener<grpc.experimental.IdentityCertificateUpdate>>();
  private readonly caListeners = new Set<Listener<grpc.experimental.CaCertificateUpdate>>();
  private files: string[] = [];

  /** Reads the files now: at start-up a set that cannot be used stops the sidecar, naming the file. */
  constructor(
    private config: TlsConfig,
    private readonly log: Logger,
  ) {
    try {
      this.current = readSet(config);
    } catch (e) {
      throw new TlsFilesError((e as Error).message);
    }
    this.watch();
  }

  private watch(): void {
    const { certFile, keyFile, clientCaFile } = this.config;
    this.files = [certFile, keyFile, ...(clientCaFile ? [clientCaFile] : [])];
    for (const file of this.files) {
      fs.watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, () => this.reload('a file changed'));
    }
  }

  /**
   * Other paths (a config reload): the new set is read and checked now, and throws an Error naming the
   * file and the key when it cannot be used; nothing changes until the returned commit is called, so a
   * reload refused for another key leaves the set in force. Adding or removing clientCaFile, or another
   * clientAuth, needs a restart (the server credentials are built with them): the caller keeps those.
   */
  prepare(next: TlsConfig): () => void {
    const unchanged =
      next.certFile === this.config.certFile &&
      next.keyFile === this.config.keyFile &&
      next.clientCaFile === this.config.clientCaFile;
    if (unchanged) return () => {};
    let set: TlsSet;
    try {
      set = readSet(next);
    } catch (e) {
      throw new TlsFilesError((e as Error).message);
    }
    return () => {
      this.close();
      this.config = next;
      this.watch();
      this.current = set;
      this.log.info('TLS files changed by the config: new connections use them', {
        certFile: next.certFile,
        serial: set.serial,
        validTo: set.validTo,
      });
      this.emit();
    };
  }

  /** The server credentials: a client certificate is asked for when there are CAs for it, and required with clientAuth: require. */
  credentials(): grpc.ServerCredentials {
    // grpc-js names its parameters the other way round; with one provider for both it does not matter.
    return grpc.experimental.createCertificateProviderServerCredentials(
      this,
      this.config.clientCaFile === undefined ? null : this,
      this.config.clientAuth === 'require',
    );
  }

  /**
   * The set in force as node:tls takes it: the admin's HTTPS server starts with it and, told by an
   * identity listener that a new set was checked, calls setSecureContext with it again.
   */
  secureContextOptions(): tls.SecureContextOptions {
    const { certificate, privateKey, caCertificate } = this.current;
    return { cert: certificate, key: privateKey, ...(caCertificate === undefined ? {} : { ca: caCertificate }) };
  }

  /** Reads the files again; a set that cannot be used is refused, with a log line, and the one in force stays. */
  reload(why: string): boolean {
    let next: TlsSet;
    try {
      next = readSet(this.config);
    } catch (e) {
      this.log.error('TLS files refused; the certificate in force stays', { why, err: (e as Error).message });
      return false;
    }
    const same =
      next.certificate.equals(this.current.certificate) &&
      next.privateKey.equals(this.current.privateKey) &&
      (next.caCertificate?.equals(this.current.caCertificate ?? Buffer.alloc(0)) ??
        this.current.caCertificate === undefined);
    if (same) {
      // Asked for by an operator: say that it was looked at, or a SIGHUP seems to do nothing.
      if (why === 'SIGHUP') this.log.info('TLS files read again: unchanged', { serial: next.serial });
      return true;
    }
    this.current = next;
    this.log.info('TLS files read again: new connections use them', {
      why,
      serial: next.serial,
      validTo: next.validTo,
    });
    this.emit();
    return true;
  }

  close(): void {
    for (const file of this.files) fs.unwatchFile(file);
  }

  // The set in force is handed to a new listener on the next tick, not at once: grpc-js registers the
  // watcher that applies it only after it adds its listeners, and would miss an update made meanwhile.
  addIdentityCertificateListener(listener: Listener<grpc.experimental.IdentityCertificateUpdate>): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) {
        listener({ certificate: this.current.certificate, privateKey: this.current.privateKey });
      }
    });
  }

  removeIdentityCertificateListener(listener: Listener<grpc.experimental.IdentityCertificateUpdate>): void {
    this.identityListeners.delete(listener);
  }

  addCaCertificateListener(listener: Listener<grpc.experimental.CaCertificateUpdate>): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      const caCertificate = this.current.caCertificate;
      if (this.caListeners.has(listener) && caCertificate !== undefined) listener({ caCertificate });
    });
  }

  removeCaCertificateListener(listener: Listener<grpc.experimental.CaCertificateUpdate>): void {
    this.caListeners.delete(listener);
  }

  private emit(): void {
    const { certificate, privateKey, caCertificate } = this.current;
    for (const l of this.caListeners) if (caCertificate !== undefined) l({ caCertificate });
    for (const l of this.identityListeners) l({ certificate, privateKey });
  }
}
