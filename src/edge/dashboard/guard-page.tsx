import { asc, desc, eq } from 'drizzle-orm'
import type { Database } from '../db/client.ts'
import { guardClients } from '../db/schema.ts'
import { CsrfField, Layout } from './layout.tsx'

type ClientRow = typeof guardClients.$inferSelect
type Signal = { signal: string; value: number; threshold: number; detail: string }

export async function loadGuardClients(db: Database, tenantId: string): Promise<ClientRow[]> {
  return db
    .select()
    .from(guardClients)
    .where(eq(guardClients.tenantId, tenantId))
    .orderBy(desc(guardClients.risk), asc(guardClients.clientId))
    .limit(100)
}

function Signals(props: { signals: unknown[] }) {
  const signals = props.signals as Signal[]
  if (signals.length === 0) return <span>none</span>
  return (
    <ul>
      {signals.map((s) => (
        <li>{`${s.signal}: ${s.value} (threshold ${s.threshold}) — ${s.detail}`}</li>
      ))}
    </ul>
  )
}

export function GuardPage(props: { csrf: string; clients: ClientRow[]; error?: string }) {
  return (
    <Layout title="Guard" current="/dashboard/guard" csrf={props.csrf}>
      {props.error ? <p class="error" role="alert">{props.error}</p> : null}
      <p>Clients ranked by extraction risk, with the signals behind each score and the action in force.</p>
      {props.clients.length === 0 ? <p>The guard has not scored any client yet.</p> : null}
      <table>
        <thead>
          <tr><th>Client</th><th>Risk</th><th>Action</th><th>Signals</th><th>Reset</th></tr>
        </thead>
        <tbody>
          {props.clients.map((client) => (
            <tr id={`client-${client.clientId}`}>
              <td><code>{client.clientId}</code></td>
              <td>{(client.risk / 1e4).toFixed(2)}</td>
              <td>{client.action}</td>
              <td><Signals signals={client.signals} /></td>
              <td>
                <form method="post" action={`/dashboard/guard/clients/${encodeURIComponent(client.clientId)}/reset`}>
                  <CsrfField token={props.csrf} />
                  <button type="submit" aria-label={`Reset ${client.clientId}`}>Reset</button>
                </form>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  )
}
