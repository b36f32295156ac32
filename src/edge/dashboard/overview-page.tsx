import { and, count, eq, gte, sql, sum } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { latencyQuantile, type LatencyQuantile } from '../../shared/traffic/latency-histogram.ts'
import { moderationEvents, trafficRollups, usageRollups } from '../db/schema.ts'
import { Layout } from './layout.tsx'
import { PeriodPicker } from './period-picker.tsx'
import { periodStart } from './period.ts'

export type Overview = {
  requests: number
  moderated: number
  flagged: number
  blocked: number
  // From the request observations: every authenticated request, its outcome and latency.
  observed: number
  refused: number
  p50: LatencyQuantile | null
}

// 429s and the latency histogram over the period. p50 is of the requests
// answered (429 refusals, which answer at once, are left out of it).
async function loadTraffic(db: Database, tenantId: string, since: number) {
  const rows = await db
    .select({ outcome: trafficRollups.outcome, bucket: trafficRollups.latencyBucket, requests: sum(trafficRollups.requests) })
    .from(trafficRollups)
    .where(and(eq(trafficRollups.tenantId, tenantId), gte(trafficRollups.hourStart, since)))
    .groupBy(trafficRollups.outcome, trafficRollups.latencyBucket)
  let observed = 0
  let refused = 0
  const answered = new Map<number, number>()
  for (const row of rows) {
    const n = Number(row.requests ?? 0)
    observed += n
    if (row.outcome === 'refused') refused += n
    else answered.set(row.bucket, (answered.get(row.bucket) ?? 0) + n)
  }
  return { observed, refused, p50: latencyQuantile(answered, 0.5) }
}

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
    ...(await loadTraffic(db, tenantId, since)),
    requests: Number(requests?.total ?? 0),
    moderated: moderation?.total ?? 0,
    flagged: Number(moderation?.flagged ?? 0),
    blocked: Number(moderation?.blocked ?? 0),
  }
}

function share(part: number, whole: number): string {
  return whole === 0 ? '—' : `${((100 * part) / whole).toFixed(1)}%`
}

function Card(props: { label: string; value: string | number; id: string; note?: string }) {
  return (
    <div class="card" id={props.id}>
      <span>{props.label}</span>
      <strong>{props.value}</strong>
      {props.note ? <small>{props.note}</small> : null}
    </div>
  )
}

function latencyText(p50: LatencyQuantile | null): string {
  if (!p50) return '—'
  if (p50.bucket === 0) return '< 1 ms'
  if (p50.high === null) return `≥ ${Math.round(p50.low)} ms`
  return `≈ ${p50.ms < 10 ? p50.ms.toFixed(1) : Math.round(p50.ms)} ms`
}

export function OverviewPage(props: { csrf: string; days: number; overview: Overview }) {
  const { requests, moderated, flagged, blocked, observed, refused, p50 } = props.overview
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
      <p>Shares are of billed requests in the period. Requests refused with 429 are not billed and not counted there.</p>
      <h2>Refusals and latency</h2>
      <div class="cards">
        <Card id="observed" label="Requests seen" value={observed} />
        <Card id="refused" label="Refused (429)" value={`${refused} (${share(refused, observed)})`} />
        <Card id="p50" label="p50 latency" value={latencyText(p50)} note={p50 && p50.bucket > 0 ? 'within ±9%' : undefined} />
      </div>
      <p>
        Every authenticated request is seen, billed or not; 429s are quota, rate-limit and busy-model refusals. p50 is of the
        requests answered (429s left out), read from hourly histograms of quarter-octave buckets, so it is within 9% of the exact
        median; it is time to the response's headers as the edge's clock sees it. These figures reach the dashboard through the
        usage queue, seconds after the requests.
      </p>
    </Layout>
  )
}
