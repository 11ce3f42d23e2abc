// Whether StreamEvents batches should go to the worker threads: only while the event loop is busy. A
// lightly loaded sidecar evaluates on the event loop, as fast and without two hops between threads: a
// batch sent to a worker now and then waited for the thread to be scheduled and added tens of
// milliseconds to the ack latency.
import { performance } from 'node:perf_hooks';

/**
 * How busy the event loop must be before batches go to workers, and how idle before they stop. A
 * loop doing all the work of a saturating stream measured 0.7-0.9 (it also waits on the disk), so a
 * mark at 0.8 kept the worker out for seconds of full load; a steady 20k events/s measures ~0.1.
 */
export const OFFLOAD_ABOVE = 0.6;
export const OFFLOAD_BELOW = 0.3;
/**
 * Samples in a row above OFFLOAD_ABOVE before offloading: a garbage collection or a rotation makes one
 * window busy, and sending batches to a worker woken from idle cost tens of milliseconds per batch.
 */
export const BUSY_SAMPLES = 3;
/**
 * Samples in a row below OFFLOAD_BELOW before offloading stops: a stream pausing between bursts for
 * a moment under load should not send the next burst through a switch back and forth (500 ms).
 */
export const IDLE_SAMPLES = 5;
const LOAD_SAMPLE_MS = 100;

/**
 * The decision from a sequence of utilisation samples (0 to 1), with hysteresis: offloading starts
 * after BUSY_SAMPLES samples in a row with the loop above OFFLOAD_ABOVE, and stops after IDLE_SAMPLES
 * in a row with the loop and the workers together below OFFLOAD_BELOW. Together, because while
 * offloading the loop is busy for less by what the workers took, and all of that would come back to
 * it: a steady load with the loop at 0.65 on its own measures ~0.3 on the loop while offloading, and
 * judged on the loop alone it would switch back and forth.
 */
export class OffloadSwitch {
  on = false;
  /** Samples in a row with the loop above OFFLOAD_ABOVE. */
  private busySamples = 0;
  /** Samples in a row with the loop and the workers together below OFFLOAD_BELOW. */
  private idleSamples = 0;

  /** `loop`: the event loop's utilisation; `workers`: the worker threads' summed (0 to the thread count). */
  sample(loop: number, workers = 0): boolean {
    this.busySamples = loop > OFFLOAD_ABOVE ? this.busySamples + 1 : 0;
    this.idleSamples = loop + workers < OFFLOAD_BELOW ? this.idleSamples + 1 : 0;
    this.on = this.on ? this.idleSamples < IDLE_SAMPLES : this.busySamples >= BUSY_SAMPLES;
    return this.on;
  }
}

/**
 * The event loop's utilisation (and the workers', from `workersUtilization`) sampled every 100 ms
 * into an OffloadSwitch; 'always' offloads (tests).
 */
export class LoopLoad {
  private readonly decision = new OffloadSwitch();
  private last = performance.eventLoopUtilization();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    readonly mode: 'busy' | 'always',
    private readonly workersUtilization: () => number = () => 0,
  ) {
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
    this.decision.sample(performance.eventLoopUtilization(now, this.last).utilization, this.workersUtilization());
    this.last = now;
  }
}
