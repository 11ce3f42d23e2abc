// Whether the sidecar takes work, in one place. Every service reads it, health reports it, and the
// drain starts from it: nothing keeps its own copy of "shutting down".
import { EventEmitter } from 'node:events';

interface ServingEvents {
  /** The drain began: streams end after their in-flight acks, new calls are refused. */
  draining: [];
}

export class ServingState extends EventEmitter<ServingEvents> {
  private begun = false;

  /** True once the drain began: new streams, Record calls and rule changes are refused (UNAVAILABLE). */
  get draining(): boolean {
    return this.begun;
  }

  /** Begins the drain (once). */
  drain(): void {
    if (this.begun) return;
    this.begun = true;
    this.emit('draining');
  }
}
