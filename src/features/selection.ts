/**
 * What a lookup, a training set or a decision selects: exactly one of
 * `view:feature` references, a whole view, or a feature service; and the
 * features it resolves to (FeatureRegistry.resolve).
 */

/** What a lookup asks for: exactly one of `view:feature` references, a whole view, or a service. */
export interface FeatureSelection {
  features?: string[];
  view?: string;
  service?: string;
}

/** How many of a selection's three forms are given (1 for a valid selection). */
export const formsGiven = (sel: FeatureSelection): number => (sel.features?.length ? 1 : 0) + (sel.view ? 1 : 0) + (sel.service ? 1 : 0);

/** One requested feature, resolved. */
export interface ResolvedFeature {
  /** `view:feature` as requested. */
  ref: string;
  view: string;
  feature: string;
  /** Index of the feature in its view's evaluator. */
  index: number;
}

/** The first ref that appears again in `refs`, if one does (linear: a list may be long). */
export function firstRepeat(refs: string[]): string | undefined {
  const seen = new Set<string>();
  for (const ref of refs) {
    if (seen.has(ref)) return ref;
    seen.add(ref);
  }
  return undefined;
}
