// Whether the sidecar takes work, in one place. Every service reads it, health reports it, and the
// drain starts from it: nothing keeps its own copy of "shutting down" or "cannot write".
import { EventEmitter } from 'node:events';

interface ServingEvents {
  /** The drain began: streams end after their in-flight acks, new calls are refused. */
  draining: [];
  /** What cannot be written changed (empty: everything writes again). */
  failing: [parts: readonly string[]];
}

export class ServingState extends EventEmitter<ServingEvents> {
  private begun = false;
  private failingParts: readonly string[] = [];

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

  /** Whether health says SERVING: not draining, and everything writes. */
  get healthy(): boolean {
    return !this.begun && this.failingParts.length === 0;
  }

  /** Begins the drain (once). */
  drain(): void {
    if (this.begun) return;
    this.begun = true;
    this.emit('draining');
  }

  /** Sets what cannot be written (the writer reports each change). */
  setFailing(parts: readonly string[]): void {
    this.failingParts = [...parts];
    this.emit('failing', this.failingParts);
  }
}
