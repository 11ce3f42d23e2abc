// RFC 3339 parsing of the times a control plane sends (an event's date, a token's expiry).

// Date.parse alone accepts far more than RFC 3339 ("2022-09-21", "Sep 21 2022"); the record promises
// RFC 3339, so the input must be it too.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Epoch ms of an RFC 3339 time, or NaN when it is not one. */
export function parseRfc3339(text: string): number {
  const m = RFC3339.exec(text);
  if (m === null) return NaN;
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60) {
    return NaN;
  }
  // Date.parse keeps only milliseconds; longer fractions are cut first so it accepts them.
  const normalized = m[7] !== undefined && m[7].length > 4 ? text.replace(m[7], m[7].slice(0, 4)) : text;
  return Date.parse(normalized.replace(' ', 'T'));
}

/**
 * parseRfc3339 with a memory of the last text: consecutive events that carry the same date string (a
 * control plane that stamps whole seconds) parse it once. Dates that differ per event (fractions) miss it.
 */
export class Rfc3339Parser {
  private lastText = '';
  private lastMs = NaN;

  parse(text: string): number {
    if (text !== this.lastText) {
      this.lastMs = parseRfc3339(text);
      this.lastText = text;
    }
    return this.lastMs;
  }
}
