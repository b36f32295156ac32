import { DurableObject } from 'cloudflare:workers'
import { periodWindow, type QuotaDecision, type QuotaLimit } from '../../shared/billing/quota-period.ts'
import type { Env } from '../env.ts'

// One Durable Object per tenant: the single authority on how much of each
// limited meter the tenant has used in the current period, so a limit holds
// exactly across every edge location and isolate. Counters live in the
// object's SQLite storage; an alarm drops windows that have ended.
export class UsageQuota extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    ctx.blockConcurrencyWhile(async () => {
      this.ctx.storage.sql.exec(
        `CREATE TABLE IF NOT EXISTS quota_usage (meter TEXT NOT NULL, period TEXT NOT NULL, window_start INTEGER NOT NULL,
          window_end INTEGER NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (meter, period, window_start))`,
      )
    })
  }

  private used(limit: QuotaLimit, windowStart: number): number {
    const rows = this.ctx.storage.sql
      .exec<{ used: number }>(`SELECT used FROM quota_usage WHERE meter = ? AND period = ? AND window_start = ?`, limit.meter, limit.period, windowStart)
      .toArray()
    return rows[0]?.used ?? 0
  }

  private async add(limit: QuotaLimit, amount: number, window: { start: number; end: number }): Promise<void> {
    this.ctx.storage.sql.exec(
      `INSERT INTO quota_usage (meter, period, window_start, window_end, used) VALUES (?, ?, ?, ?, MAX(?, 0))
        ON CONFLICT DO UPDATE SET used = MAX(used + ?, 0)`,
      limit.meter,
      limit.period,
      window.start,
      window.end,
      amount,
      amount,
    )
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(window.end)
  }

  // Admits a request: takes one unit under every `requests` limit and checks
  // that no other limited meter is spent, all at once; a refused request
  // takes nothing.
  async admit(requestLimits: QuotaLimit[], otherLimits: QuotaLimit[], now = Date.now()): Promise<QuotaDecision[]> {
    const spent = this.usage(otherLimits, now)
    if (spent.some((decision) => !decision.allowed)) return [...spent, ...this.usage(requestLimits, now)]
    return [...spent, ...(await this.consume(requestLimits, 1, now))]
  }

  private async consume(limits: QuotaLimit[], amount: number, now: number): Promise<QuotaDecision[]> {
    const decisions = limits.map((limit) => {
      const window = periodWindow(limit.period, now)
      const used = this.used(limit, window.start)
      return { limit, window, decision: { allowed: used + amount <= limit.limit, meter: limit.meter, period: limit.period, used, limit: limit.limit, resetAt: window.end } }
    })
    if (decisions.every(({ decision }) => decision.allowed)) {
      for (const { limit, window, decision } of decisions) {
        await this.add(limit, amount, window)
        decision.used += amount
      }
    }
    return decisions.map(({ decision }) => decision)
  }

  // Usage known only after the fact (characters, tokens, bytes) counts
  // towards the period; the next request is refused once it is spent.
  async record(limits: QuotaLimit[], amount: number, now = Date.now()): Promise<void> {
    for (const limit of limits) await this.add(limit, amount, periodWindow(limit.period, now))
  }

  // Gives back what consume took for a request that then failed (5xx), which
  // is not billed either.
  async refund(limits: QuotaLimit[], amount: number, at: number): Promise<void> {
    for (const limit of limits) await this.add(limit, -amount, periodWindow(limit.period, at))
  }

  usage(limits: QuotaLimit[], now = Date.now()): QuotaDecision[] {
    return limits.map((limit) => {
      const window = periodWindow(limit.period, now)
      const used = this.used(limit, window.start)
      return { allowed: used < limit.limit, meter: limit.meter, period: limit.period, used, limit: limit.limit, resetAt: window.end }
    })
  }

  override async alarm(): Promise<void> {
    const now = Date.now()
    this.ctx.storage.sql.exec(`DELETE FROM quota_usage WHERE window_end <= ?`, now)
    const next = this.ctx.storage.sql.exec<{ end: number | null }>(`SELECT MIN(window_end) AS end FROM quota_usage`).one().end
    if (next !== null) await this.ctx.storage.setAlarm(next)
  }
}
