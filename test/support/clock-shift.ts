// A preload (`node --require`) that moves a process's wall clock by MESHAUDIT_TEST_CLOCK_SHIFT_MS, as
// libfaketime would: `Date.now()` and `new Date()` read the shifted time, timers and monotonic clocks
// are untouched. It lets a test run the real built sidecar a few seconds before a UTC boundary (interval
// rotation) without waiting up to a day for one. Nothing in src/ knows of it.
const shiftMs = Number(process.env.MESHAUDIT_TEST_CLOCK_SHIFT_MS ?? '0');
if (!Number.isSafeInteger(shiftMs)) throw new Error('MESHAUDIT_TEST_CLOCK_SHIFT_MS must be an integer (ms)');

const RealDate = Date;

class ShiftedDate extends RealDate {
  constructor(...args: ConstructorParameters<DateConstructor> | []) {
    if (args.length === 0) super(RealDate.now() + shiftMs);
    else super(...(args as [string | number | Date]));
  }

  static override now(): number {
    return RealDate.now() + shiftMs;
  }
}

globalThis.Date = ShiftedDate as DateConstructor;
