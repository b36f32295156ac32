import { and, count, eq, gte, sql, sum } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { moderationEvents, usageRollups } from '../db/schema.ts'
import { Layout } from './layout.tsx'
import { PeriodPicker } from './period-picker.tsx'
import { periodStart } from './period.ts'

export type Overview = { requests: number; moderated: number; flagged: number; blocked: number }

export async function loadOverview(db: Database, tenantId: string, days: number): Promise<Overview> {
  const since = periodStart(days)
  const [requests] = await db
    .select({ total: sum(usageRollups.value) })
    .from(usageRollups)
    .where(
      and(
        eq(usageRollups.tenantId, tenantId),
        eq(usageRollups.meter, 'requests'),
        eq(usageRollups.granularity, 'day'),
        gte(usageRollups.bucketStart, since),
      ),
    )
  const [moderation] = await db
    .select({
      total: count(),
      flagged: sql<number>`coalesce(sum(${moderationEvents.action} = 'flag'), 0)`,
      blocked: sql<number>`coalesce(sum(${moderationEvents.action} = 'block'), 0)`,
    })
    .from(moderationEvents)
    .where(and(eq(moderationEvents.tenantId, tenantId), gte(moderationEvents.createdAt, since)))
  return {
    requests: Number(requests?.total ?? 0),
    moderated: moderation?.total ?? 0,
    flagged: Number(moderation?.flagged ?? 0),
    blocked: Number(moderation?.blocked ?? 0),
  }
}

function share(part: number, whole: number): string {
  return whole === 0 ? '—' : `${((100 * part) / whole).toFixed(1)}%`
}

function Card(props: { label: string; value: string | number; id: string }) {
  return (
    <div class="card" id={props.id}>
      <span>{props.label}</span>
      <strong>{props.value}</strong>
    </div>
  )
}

export function OverviewPage(props: { csrf: string; days: number; overview: Overview }) {
  const { requests, moderated, flagged, blocked } = props.overview
  return (
    <Layout title="Overview" current="/dashboard" csrf={props.csrf}>
      <PeriodPicker action="/dashboard" days={props.days} />
      <h2>Traffic</h2>
      <div class="cards">
        <Card id="requests" label="Billed requests" value={requests} />
        <Card id="moderated" label="Moderation events" value={moderated} />
        <Card id="flagged" label="Flagged" value={`${flagged} (${share(flagged, requests)})`} />
        <Card id="blocked" label="Blocked" value={`${blocked} (${share(blocked, requests)})`} />
      </div>
      <p>Shares are of billed requests in the period. Requests refused with 429 are not billed and not counted here.</p>
    </Layout>
  )
}
