// "Full, drained, idle" in one place, for any amount of pending work: the writer's queued bytes, its
// unanswered requests, its disk operations under way. Producers stop reading while it is full and go
// on at 'drain'; shutdown waits for idle().
import { EventEmitter } from 'node:events';

interface BacklogEvents {
  /** The amount fell below the high-water mark: producers may read again. */
  drain: [];
  /** The amount reached zero. */
  idle: [];
}

export class Backlog extends EventEmitter<BacklogEvents> {
  private amount = 0;

  /** `highWater`: the amount at and above which the backlog is full; Infinity: never full. */
  constructor(private readonly highWater = Number.POSITIVE_INFINITY) {
    super();
    // Every open control-plane stream may wait for 'drain'; that is not a leak.
    this.setMaxListeners(0);
  }

  get size(): number {
    return this.amount;
  }

  get isFull(): boolean {
    return this.amount >= this.highWater;
  }

  add(n = 1): void {
    this.amount += n;
  }

  remove(n = 1): void {
    const wasFull = this.isFull;
    this.amount -= n;
    if (wasFull && !this.isFull) this.emit('drain');
    if (this.amount === 0 && n > 0) this.emit('idle');
  }

  /** Resolves once the amount is zero (at once when it is). */
  idle(): Promise<void> {
    if (this.amount === 0) return Promise.resolve();
    return new Promise((resolve) => this.once('idle', resolve));
  }
}
