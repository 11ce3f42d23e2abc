// The record's date format (spec section 3): RFC 3339, whole seconds, the sidecar's local UTC offset.

/** Minutes east of UTC at a given instant; injected so tests and other zones can fix it. */
type UtcOffsetFn = (epochMs: number) => number;

/** The process's local offset (follows TZ and daylight saving time). */
const localUtcOffset: UtcOffsetFn = (epochMs) => -new Date(epochMs).getTimezoneOffset();

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/**
 * Formats `2022-09-21T09:31:42+02:00` (fractions truncated, `Z` for a zero offset). The last second is
 * cached: a busy stream formats thousands of events within the same second.
 */
export class RecordDateFormatter {
  private readonly dates = new SecondCache();
  private readonly others = new SecondCache();

  constructor(private readonly offsetOf: UtcOffsetFn = localUtcOffset) {}

  /** An event's date. */
  format(epochMs: number): string {
    return this.dates.get(epochMs, this);
  }

  /**
   * Any other time of the record (a token's expiry), cached apart: the two alternate in every token
   * record, and one shared cache would miss on both.
   */
  formatOther(epochMs: number): string {
    return this.others.get(epochMs, this);
  }

  /** Formats without a cache. */
  formatSecond(second: number): string {
    const offsetMin = this.offsetOf(second * 1000);
    // Shift by the offset and read the UTC fields: that gives the local wall-clock time.
    const d = new Date((second + offsetMin * 60) * 1000);
    const year = d.getUTCFullYear();
    const yearText = year >= 0 && year <= 9999 ? String(year).padStart(4, '0') : String(year);
    let zone = 'Z';
    if (offsetMin !== 0) {
      const abs = Math.abs(offsetMin);
      zone = `${offsetMin < 0 ? '-' : '+'}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
    }
    return (
      `${yearText}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}` +
      `T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}${zone}`
    );
  }
}

/** The last second formatted, and its text. */
class SecondCache {
  private second = NaN;
  private text = '';

  get(epochMs: number, f: RecordDateFormatter): string {
    const second = Math.floor(epochMs / 1000);
    if (second !== this.second) {
      this.text = f.formatSecond(second);
      this.second = second;
    }
    return this.text;
  }
}
