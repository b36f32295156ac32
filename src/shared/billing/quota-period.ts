// Quota periods are UTC calendar days and months.
export const QUOTA_PERIODS = ['day', 'month'] as const
export type QuotaPeriod = (typeof QUOTA_PERIODS)[number]

export type PeriodWindow = { start: number; end: number }

export function periodWindow(period: QuotaPeriod, now: number): PeriodWindow {
  const date = new Date(now)
  if (period === 'day') {
    const start = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate())
    return { start, end: start + 86_400_000 }
  }
  return {
    start: Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1),
    end: Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1),
  }
}

export type QuotaLimit = { meter: string; period: QuotaPeriod; limit: number }

export type QuotaDecision = { allowed: boolean; meter: string; period: QuotaPeriod; used: number; limit: number; resetAt: number }
