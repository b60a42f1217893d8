/**
 * Refusals of a JSON number that name it by the literal sent. A row validator
 * sees only the float64 JSON.parse made (`9007199254740993` arrives as
 * 9007199254740992), so it names such a number without a value (coerce.ts
 * BEYOND_2_53); where the text of the rows was kept (json-safety.ts
 * noteRowsText: NDJSON, and JSON bodies whose text is kept), the literal is
 * put in front. Run on the error path only: a write that passes pays nothing.
 */
import { BEYOND_2_53 } from '../engine/coerce.js';
import { bentNumbersInRows } from '../engine/json-safety.js';
import type { FieldIssue } from '../errors.js';

/** Rewrites, in place, the reason of each issue about a column's own number beyond 2^53 to quote the literal sent. */
export function quoteSentLiterals(issues: FieldIssue[], rows: unknown[]): void {
  if (!issues.some((i) => i.reason.includes(BEYOND_2_53))) return;
  const bent = bentNumbersInRows(rows);
  for (const issue of issues) {
    if (!issue.reason.includes(BEYOND_2_53)) continue;
    const b = bent.find((x) => x.path.length === 2 && x.path[0] === issue.row && x.path[1] === issue.field);
    if (b) issue.reason = issue.reason.replace(BEYOND_2_53, `${b.literal.length > 40 ? `${b.literal.slice(0, 40)}…` : b.literal} (of magnitude 2^53 or more: a JSON number does not carry it exactly)`);
  }
}
