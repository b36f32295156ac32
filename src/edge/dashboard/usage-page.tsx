import { and, asc, eq, gte, sum } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { usageRollups } from '../db/schema.ts'
import { BarChart, type Point } from './bar-chart.tsx'
import { Layout } from './layout.tsx'
import { PeriodPicker, type KeyChoice } from './period-picker.tsx'
import { periodStart } from './period.ts'

const DAY_MS = 86_400_000

export type MeterSeries = { meter: string; total: number; points: Point[] }

// Daily totals per meter over the period, of one key or of all of them, with
// a zero for each day without usage so that every chart has one bar per day.
export async function loadUsage(db: Database, tenantId: string, days: number, keyId?: string): Promise<MeterSeries[]> {
  const since = periodStart(days)
  const rows = await db
    .select({ meter: usageRollups.meter, day: usageRollups.bucketStart, value: sum(usageRollups.value) })
    .from(usageRollups)
    .where(
      and(
        eq(usageRollups.tenantId, tenantId),
        eq(usageRollups.granularity, 'day'),
        gte(usageRollups.bucketStart, since),
        keyId === undefined ? undefined : eq(usageRollups.keyId, keyId),
      ),
    )
    .groupBy(usageRollups.meter, usageRollups.bucketStart)
    .orderBy(asc(usageRollups.meter))
  const byMeter = new Map<string, Map<number, number>>()
  for (const row of rows) {
    const daysOfMeter = byMeter.get(row.meter) ?? new Map<number, number>()
    daysOfMeter.set(row.day, Number(row.value ?? 0))
    byMeter.set(row.meter, daysOfMeter)
  }
  return [...byMeter].map(([meter, values]) => {
    const points = Array.from({ length: days }, (_, i) => {
      const day = since + i * DAY_MS
      return { label: new Date(day).toISOString().slice(0, 10), value: values.get(day) ?? 0 }
    })
    return { meter, total: points.reduce((acc, p) => acc + p.value, 0), points }
  })
}

export function UsagePage(props: { csrf: string; days: number; series: MeterSeries[]; keys: KeyChoice[]; chosen?: KeyChoice | undefined }) {
  const of = props.chosen ? ` of ${props.chosen.label}` : ''
  return (
    <Layout title="Usage" current="/dashboard/usage" csrf={props.csrf}>
      <PeriodPicker action="/dashboard/usage" days={props.days} keys={props.keys} keyId={props.chosen?.id} />
      <p id="usage-scope">{props.chosen ? `Usage of the key ${props.chosen.label}.` : 'Usage of every key of this tenant.'}</p>
      {props.series.length === 0 ? <p>No usage recorded in this period.</p> : null}
      {props.series.map((series) => (
        <section id={`meter-${series.meter}`}>
          <h2>{series.meter}</h2>
          <p>Total: <strong>{series.total}</strong></p>
          <BarChart title={`${series.meter} per day${of}`} points={series.points} />
        </section>
      ))}
    </Layout>
  )
}
