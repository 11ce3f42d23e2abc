// "Did you mean" for validation messages: the nearest valid name to a misspelt one.

/** Smallest distance tolerated whatever the length: one transposition costs two edits. */
const MIN_TYPO_DISTANCE = 2;
/** Beyond a third of the word edited, a suggestion is a guess rather than a typo fix. */
const TYPO_DISTANCE_PER_CHAR = 1 / 3;

/**
 * The candidate nearest to `value` by case-insensitive Levenshtein distance, when close enough to be
 * a plausible typo of it (distance <= max(2, length / 3)); undefined otherwise. Ties go to the
 * candidate listed first, so that suggestions are stable.
 */
export function nearest(value: string, candidates: readonly string[]): string | undefined {
  if (value.length === 0) return undefined;
  const needle = value.toLowerCase();
  const maxDistance = Math.max(MIN_TYPO_DISTANCE, Math.floor(needle.length * TYPO_DISTANCE_PER_CHAR));
  let best: string | undefined;
  let bestDistance = maxDistance + 1;
  for (const candidate of candidates) {
    // The distance is at least the difference in length: skip the quadratic work when it cannot win.
    if (Math.abs(candidate.length - needle.length) >= bestDistance) continue;
    const distance = levenshtein(needle, candidate.toLowerCase(), bestDistance);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Edit distance (insertions, deletions, substitutions) between a and b; any value >= `limit` once the
 * distance is known to reach `limit`, since callers only need to know it cannot win.
 */
function levenshtein(a: string, b: string, limit: number): number {
  let previous = new Array<number>(b.length + 1);
  let current = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) previous[j] = j;
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1);
      current[j] = Math.min(substitution, previous[j] + 1, current[j - 1] + 1);
      if (current[j] < rowMin) rowMin = current[j];
    }
    if (rowMin >= limit) return limit;
    [previous, current] = [current, previous];
  }
  return previous[b.length];
}
