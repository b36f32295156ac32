import { desc, eq, sql } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { moderationEvents } from '../db/schema.ts'
import { Layout } from './layout.tsx'
import { PeriodPicker } from './period-picker.tsx'
import { periodStart } from './period.ts'

type EventRow = typeof moderationEvents.$inferSelect

const ACTIONS = ['block', 'redact', 'flag', 'observe'] as const
// An event with no category was decided by the blocklist alone.
const NO_CATEGORY = '(blocklist)'

export type CategoryGroup = { category: string; events: number; actions: Record<string, number>; lastAt: number; sources: string[] }

// moderation_events holds categories, scores and the action, never the text
// (it may hold personal data), so there is no text here to show or redact.
export async function loadModerationEvents(db: Database, tenantId: string): Promise<EventRow[]> {
  return db.select().from(moderationEvents).where(eq(moderationEvents.tenantId, tenantId)).orderBy(desc(moderationEvents.createdAt)).limit(100)
}

// The period's events by category (an event with two categories counts under
// both), most frequent first, with what was done about them.
export async function loadCategoryGroups(db: Database, tenantId: string, days: number): Promise<CategoryGroup[]> {
  const rows = await db.all<{ category: string | null; action: string; events: number; last_at: number; sources: string }>(sql`
    SELECT category.value AS category, e.action AS action, count(*) AS events, max(e.created_at) AS last_at, group_concat(DISTINCT e.source) AS sources
      FROM moderation_events AS e LEFT JOIN json_each(e.categories) AS category
     WHERE e.tenant_id = ${tenantId} AND e.created_at >= ${periodStart(days)}
     GROUP BY category.value, e.action`)
  const groups = new Map<string, CategoryGroup>()
  for (const row of rows) {
    const category = row.category ?? NO_CATEGORY
    const group = groups.get(category) ?? { category, events: 0, actions: {}, lastAt: 0, sources: [] }
    group.events += row.events
    group.actions[row.action] = (group.actions[row.action] ?? 0) + row.events
    group.lastAt = Math.max(group.lastAt, row.last_at)
    for (const source of (row.sources ?? '').split(',')) if (source && !group.sources.includes(source)) group.sources.push(source)
    groups.set(category, group)
  }
  return [...groups.values()].sort((a, b) => b.events - a.events || a.category.localeCompare(b.category))
}

const when = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ')

function Groups(props: { groups: CategoryGroup[] }) {
  if (props.groups.length === 0) return <p>Nothing was flagged in this period.</p>
  return (
    <table id="categories">
      <caption class="visually-hidden">Moderation events by category in the period</caption>
      <thead>
        <tr><th>Category</th><th>Events</th>{ACTIONS.map((action) => <th>{action}</th>)}<th>Sources</th><th>Last (UTC)</th></tr>
      </thead>
      <tbody>
        {props.groups.map((group) => (
          <tr id={`category-${group.category}`}>
            <th scope="row">{group.category}</th>
            <td>{group.events}</td>
            {ACTIONS.map((action) => <td>{group.actions[action] ?? 0}</td>)}
            <td>{group.sources.sort().join(', ')}</td>
            <td>{when(group.lastAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

export function ModerationPage(props: { csrf: string; days: number; groups: CategoryGroup[]; events: EventRow[] }) {
  return (
    <Layout title="Moderation" current="/dashboard/moderation" csrf={props.csrf}>
      <p>
        Moat records the categories, scores and action of each moderation decision, never the text it judged (it may hold personal
        data), so no policy makes text appear here and there is nothing to redact.
      </p>
      <PeriodPicker action="/dashboard/moderation" days={props.days} />
      <h2>By category</h2>
      <Groups groups={props.groups} />
      <h2>Latest events</h2>
      {props.events.length === 0 ? <p>No moderation events yet.</p> : null}
      <table>
        <caption class="visually-hidden">The latest 100 moderation events</caption>
        <thead>
          <tr><th>When (UTC)</th><th>Source</th><th>Direction</th><th>Action</th><th>Categories</th><th>Request</th></tr>
        </thead>
        <tbody>
          {props.events.map((event) => (
            <tr>
              <td>{when(event.createdAt)}</td>
              <td>{event.source}</td>
              <td>{event.direction}</td>
              <td>{event.action}</td>
              <td>{event.categories.join(', ')}</td>
              <td><code>{event.requestId}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  )
}
