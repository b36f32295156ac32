import { desc, eq } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { moderationEvents } from '../db/schema.ts'
import { Layout } from './layout.tsx'

type EventRow = typeof moderationEvents.$inferSelect

// moderation_events holds categories and the action, never the text, so
// there is nothing here to redact.
export async function loadModerationEvents(db: Database, tenantId: string): Promise<EventRow[]> {
  return db.select().from(moderationEvents).where(eq(moderationEvents.tenantId, tenantId)).orderBy(desc(moderationEvents.createdAt)).limit(100)
}

export function ModerationPage(props: { csrf: string; events: EventRow[] }) {
  return (
    <Layout title="Moderation" current="/dashboard/moderation" csrf={props.csrf}>
      <p>The latest 100 moderation events. Moat records categories and actions, never the text.</p>
      {props.events.length === 0 ? <p>No moderation events yet.</p> : null}
      <table>
        <thead>
          <tr><th>When (UTC)</th><th>Source</th><th>Direction</th><th>Action</th><th>Categories</th><th>Request</th></tr>
        </thead>
        <tbody>
          {props.events.map((event) => (
            <tr>
              <td>{new Date(event.createdAt).toISOString().slice(0, 19).replace('T', ' ')}</td>
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
