// Whether StreamEvents batches should go to the worker threads: only while the event loop is busy. A
// lightly loaded sidecar evaluates on the event loop, as fast and without two hops between threads: a
// batch sent to a worker now and then waited for the thread to be scheduled and added tens of
// milliseconds to the ack latency.
import { performance } from 'node:perf_hooks';

/** How busy the event loop must be before batches go to workers, and how idle before they stop. */
export const OFFLOAD_ABOVE = 0.8;
export const OFFLOAD_BELOW = 0.3;
/**
 * Samples in a row above OFFLOAD_ABOVE before offloading: a garbage collection or a rotation makes one
 * window busy, and sending batches to a worker woken from idle cost tens of milliseconds per batch.
 */
export const BUSY_SAMPLES = 3;
const LOAD_SAMPLE_MS = 100;

/**
 * The decision from a sequence of utilisation samples (0 to 1), with hysteresis: offloading starts
 * after BUSY_SAMPLES samples in a row above OFFLOAD_ABOVE and stops at the first below OFFLOAD_BELOW
 * (once offloading, the loop is busy for less, and that must not switch it back).
 */
export class OffloadSwitch {
  on = false;
  /** Samples in a row above OFFLOAD_ABOVE. */
  private busySamples = 0;

  sample(utilization: number): boolean {
    this.busySamples = utilization > OFFLOAD_ABOVE ? this.busySamples + 1 : 0;
    this.on = this.on ? utilization >= OFFLOAD_BELOW : this.busySamples >= BUSY_SAMPLES;
    return this.on;
  }
}

/** The event loop's utilisation sampled every 100 ms into an OffloadSwitch; 'always' offloads (tests). */
export class LoopLoad {
  private readonly decision = new OffloadSwitch();
  private last = performance.eventLoopUtilization();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly mode: 'busy' | 'always') {
    if (mode === 'busy') {
      this.timer = setInterval(() => this.sample(), LOAD_SAMPLE_MS);
      this.timer.unref();
    }
  }

  offload(): boolean {
    return this.mode === 'always' || this.decision.on;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const now = performance.eventLoopUtilization();
    this.decision.sample(performance.eventLoopUtilization(now, this.last).utilization);
    this.last = now;
  }
}
