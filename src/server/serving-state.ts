// Whether the sidecar takes work, in one place. Every service reads it, gRPC health and the admin's
// /ready report it, and the drain starts from it: nothing keeps its own copy of "starting", "shutting
// down", "cannot write" or "failed by hand", so that gRPC health and /ready can never disagree.
import { EventEmitter } from 'node:events';

interface ServingEvents {
  /** The drain began: streams end after their in-flight acks, new calls are refused. */
  draining: [];
  /** What cannot be written changed (empty: everything writes again). */
  failing: [parts: readonly string[]];
  /** Anything `healthy` or `reason()` depend on changed (start-up ended, drain, failing, healthcheck). */
  change: [];
}

export class ServingState extends EventEmitter<ServingEvents> {
  private begun = false;
  private failingParts: readonly string[] = [];
  private startingUp: boolean;
  private failedByHand = false;
  private degradedBecause: string | undefined;

  /**
   * `starting`: the sidecar is still starting (the admin answers /ready before the services are
   * added): not healthy until started(). Without it, the state starts as started (tests).
   */
  constructor(opts: { starting?: boolean } = {}) {
    super();
    this.startingUp = opts.starting ?? false;
  }

  /** True until start-up ends (started()). */
  get starting(): boolean {
    return this.startingUp;
  }

  /** True once the drain began: new streams, Record calls and rule changes are refused (UNAVAILABLE). */
  get draining(): boolean {
    return this.begun;
  }

  /**
   * What cannot be written now: audit files (by path) and `checkpoint`. Calls are still taken (they
   * wait, and are acknowledged once written), but health says NOT_SERVING, so that a load balancer or
   * an operator sees that nothing is being recorded.
   */
  get failing(): readonly string[] {
    return this.failingParts;
  }

  /** True while an operator failed the health check by hand (POST /healthcheck/fail), until /healthcheck/ok. */
  get healthcheckFailed(): boolean {
    return this.failedByHand;
  }

  /**
   * Why the sidecar runs degraded: it takes and writes every event (health stays SERVING), but a part it
   * depends on for rule changes is missing (the PostgreSQL store). Undefined: not degraded.
   */
  get degraded(): string | undefined {
    return this.degradedBecause;
  }

  /** Sets (a reason) or clears (undefined) the degraded state. */
  setDegraded(reason: string | undefined): void {
    if (this.degradedBecause === reason) return;
    this.degradedBecause = reason;
    this.emit('change');
  }

  /** Whether health says SERVING (and /ready LIVE): started, not draining, everything writes, not failed by hand. */
  get healthy(): boolean {
    return this.reason() === undefined;
  }

  /**
   * Why health says NOT_SERVING, as /ready's body says it: `starting`, `draining`, `failing: <parts>`,
   * `healthcheck failed`; undefined when healthy. The drain comes first: it never ends.
   */
  reason(): string | undefined {
    if (this.begun) return 'draining';
    if (this.startingUp) return 'starting';
    if (this.failingParts.length > 0) return `failing: ${this.failingParts.join(', ')}`;
    if (this.failedByHand) return 'healthcheck failed';
    return undefined;
  }

  /** Start-up ended: the services take calls (once). */
  started(): void {
    if (!this.startingUp) return;
    this.startingUp = false;
    this.emit('change');
  }

  /** Begins the drain (once). */
  drain(): void {
    if (this.begun) return;
    this.begun = true;
    this.emit('draining');
    this.emit('change');
  }

  /** Sets what cannot be written (the writer reports each change). */
  setFailing(parts: readonly string[]): void {
    this.failingParts = [...parts];
    this.emit('failing', this.failingParts);
    this.emit('change');
  }

  /**
   * Fails (true) or passes again (false) the health check by hand, as Envoy's /healthcheck/fail and
   * /healthcheck/ok: a load balancer or a control plane moves away while calls are still taken.
   */
  setHealthcheckFailed(failed: boolean): void {
    if (this.failedByHand === failed) return;
    this.failedByHand = failed;
    this.emit('change');
  }
}
