// The periods a page can show, in days; anything else is a bad request.
export const PERIOD_DAYS = [1, 7, 30] as const
export const DEFAULT_PERIOD_DAYS = 7
const DAY_MS = 86_400_000

export function parsePeriod(raw: string | undefined): number | null {
  if (raw === undefined || raw === '') return DEFAULT_PERIOD_DAYS
  const days = Number(raw)
  return (PERIOD_DAYS as readonly number[]).includes(days) ? days : null
}

// Day rollups start at UTC midnight, so a period of n days is today and the
// n - 1 days before it.
export function periodStart(days: number, now = Date.now()): number {
  return now - (now % DAY_MS) - (days - 1) * DAY_MS
}
