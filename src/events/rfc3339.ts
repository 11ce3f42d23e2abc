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

/** `YYYY-MM-DDTHH:MM:SS`: the bytes before an RFC 3339 time's fraction. */
const SECOND_BYTES = 19;
/** The longest RFC 3339 time: the second, a 9-digit fraction, a `+HH:MM` offset. */
const MAX_BYTES = SECOND_BYTES + 10 + 6;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * parseRfc3339 with a memory of the last second: a control plane stamps each event as it happens, with
 * a fraction that differs per event, while thousands of events share a second. The memory is keyed on
 * the time without its fraction (the second and the offset): the fraction's milliseconds are added to the
 * second's time, as Date.parse would add them, and only a new second is parsed whole.
 */
export class Rfc3339Parser {
  /** The bytes of the last second parsed (the time without its fraction) and its time (NaN: invalid). */
  private readonly key = new Uint8Array(MAX_BYTES);
  private keyLength = -1;
  private keyMs = NaN;

  /** parseRfc3339 of src[start, end) read as Latin-1 (a byte that is not ASCII makes it NaN). */
  parseBytes(src: Uint8Array, start: number, end: number): number {
    if (end - start <= SECOND_BYTES || end - start > MAX_BYTES) return parseRfc3339(latin1(src, start, end));
    // The fraction: 1 to 9 digits after a dot; its first three are the milliseconds.
    let zone = start + SECOND_BYTES;
    let fractionMs = 0;
    if (src[zone] === DOT) {
      let digits = 0;
      for (zone++; zone < end && src[zone] >= ZERO && src[zone] <= NINE; zone++, digits++) {
        if (digits < 3) fractionMs = 10 * fractionMs + src[zone] - ZERO;
      }
      // A second fraction after the first would make the key a valid time of its own.
      if (digits === 0 || digits > 9 || src[zone] === DOT) return NaN;
      for (; digits < 3; digits++) fractionMs *= 10;
    }
    if (!this.sameSecond(src, start, zone, end)) {
      // A new second: remembered with its time, parsed as the text without the fraction.
      const length = SECOND_BYTES + end - zone;
      this.key.set(src.subarray(start, start + SECOND_BYTES), 0);
      this.key.set(src.subarray(zone, end), SECOND_BYTES);
      this.keyLength = length;
      this.keyMs = parseRfc3339(latin1(this.key, 0, length));
    }
    return this.keyMs + fractionMs;
  }

  /** Whether src's second (start to start + 19) and offset (zone to end) are those remembered. */
  private sameSecond(src: Uint8Array, start: number, zone: number, end: number): boolean {
    const key = this.key;
    if (this.keyLength !== SECOND_BYTES + end - zone) return false;
    // The seconds digits first: they are what differs from one second to the next.
    for (let i = SECOND_BYTES - 1; i >= 0; i--) if (key[i] !== src[start + i]) return false;
    for (let i = zone, k = SECOND_BYTES; i < end; i++, k++) if (key[k] !== src[i]) return false;
    return true;
  }
}

function latin1(src: Uint8Array, start: number, end: number): string {
  return Buffer.from(src.buffer, src.byteOffset + start, end - start).toString('latin1');
}
