// "Did you mean …?" for a misspelled field or method name: the candidate closest to what the client
// sent, by case-insensitive edit distance (at most 3), else one that contains it or is contained in it.

const FAR = 4;

/** The item one of whose names is nearest `name`, or null when none is near. */
export function nearest<T>(name: string, items: readonly T[], namesOf: (item: T) => readonly string[]): T | null {
  const wanted = name.toLowerCase();
  let best: T | null = null;
  let bestScore = FAR;
  for (const item of items) {
    for (const candidate of namesOf(item)) {
      const c = candidate.toLowerCase();
      // A close spelling beats a mere part: maxRedemptionsPerCustomr means max_redemptions_per_customer, not max_redemptions.
      const score = Math.min(distance(wanted, c), c.includes(wanted) || wanted.includes(c) ? 2 : FAR);
      if (score < bestScore) {
        best = item;
        bestScore = score;
      }
    }
  }
  return best;
}

/** Levenshtein distance, cut off at FAR. */
function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) >= FAR) return FAR;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return Math.min(FAR, previous[b.length] ?? FAR);
}
