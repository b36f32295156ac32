import { desc, eq } from 'drizzle-orm'
import { DEFAULT_KEY_SCOPES, SCOPES } from '../auth/scopes.ts'
import type { Database } from '../db/client.ts'
import { apiKeys } from '../db/schema.ts'
import { CsrfField, Layout } from './layout.tsx'

type KeyRow = typeof apiKeys.$inferSelect

export async function loadKeys(db: Database, tenantId: string): Promise<KeyRow[]> {
  return db.select().from(apiKeys).where(eq(apiKeys.tenantId, tenantId)).orderBy(desc(apiKeys.id)).limit(200)
}

function when(ms: number | null): string {
  return ms === null ? '—' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19)
}

function KeyTable(props: { keys: KeyRow[]; csrf: string }) {
  return (
    <table>
      <caption class="visually-hidden">API keys of this tenant</caption>
      <thead>
        <tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Created</th><th>Last used</th><th>State</th></tr>
      </thead>
      <tbody>
        {props.keys.map((key) => (
          <tr id={`key-${key.id}`}>
            <td>{key.name}</td>
            <td><code>{key.prefix}…</code></td>
            <td>{key.scopes.join(', ')}</td>
            <td>{when(key.createdAt)}</td>
            <td>{when(key.lastUsedAt)}</td>
            <td>
              {key.revokedAt !== null ? (
                `revoked ${when(key.revokedAt)}`
              ) : (
                <form method="post" action={`/dashboard/keys/${key.id}/revoke`}>
                  <CsrfField token={props.csrf} />
                  <button type="submit" aria-label={`Revoke ${key.name} (${key.prefix})`}>Revoke</button>
                </form>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

function CreateKeyForm(props: { csrf: string }) {
  return (
    <form method="post" action="/dashboard/keys">
      <CsrfField token={props.csrf} />
      <p>
        <label for="key-name">Name</label>{' '}
        <input id="key-name" name="name" required maxlength={200} />
      </p>
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map((scope) => (
          <label>
            <input type="checkbox" name="scopes" value={scope} checked={(DEFAULT_KEY_SCOPES as string[]).includes(scope)} /> {scope}{' '}
          </label>
        ))}
      </fieldset>
      <button type="submit">Create key</button>
    </form>
  )
}

export function KeysPage(props: { csrf: string; keys: KeyRow[]; created?: { name: string; key: string }; error?: string }) {
  return (
    <Layout title="Keys" current="/dashboard/keys" csrf={props.csrf}>
      {props.created ? (
        <div class="notice" role="status">
          <p>Key <strong>{props.created.name}</strong> created. Copy it now: it is not shown again.</p>
          <p><code id="new-key">{props.created.key}</code></p>
        </div>
      ) : null}
      {props.error ? <p class="error" role="alert">{props.error}</p> : null}
      <h2>Create a key</h2>
      <CreateKeyForm csrf={props.csrf} />
      <h2>All keys</h2>
      <KeyTable keys={props.keys} csrf={props.csrf} />
    </Layout>
  )
}
