import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { signIn } from './dashboard-browser.ts'
import { call, createKey, createTenant, json } from './helpers.ts'

// Every secret Moat is handed or hands out, looked for in every cell of every
// table afterwards: API keys and dashboard sessions are kept only as hashes,
// webhook secrets, sink credentials and upstream headers only sealed.
async function everyCell(): Promise<string[]> {
  const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").all<{ name: string }>()
  const cells: string[] = []
  for (const { name } of tables.results) {
    const rows = await env.DB.prepare(`SELECT * FROM "${name}"`).all<Record<string, unknown>>()
    for (const row of rows.results) {
      for (const value of Object.values(row)) {
        if (value === null || value === undefined) continue
        cells.push(value instanceof ArrayBuffer ? new TextDecoder().decode(value) : String(value))
      }
    }
  }
  return cells
}

describe('secrets at rest', () => {
  it('keeps no key, session, webhook secret, sink credential or upstream header in the database', async () => {
    const tenant = await createTenant('secrets-at-rest')
    const key = await createKey(tenant)
    const webhook = await json(await call('/v1/webhooks', { key: tenant.adminKey, body: { url: 'https://hooks.example.com/moat', events: ['job.*'] } }))
    expect(webhook.secret).toMatch(/^whsec_/)
    const sinkCredential = 'sk_test_51SinkCredentialThatMustNeverBeStoredInPlainText'
    const sink = await call('/v1/billing/sinks', { key: tenant.adminKey, body: { provider: 'stripe', credential: sinkCredential, customer: 'cus_123' } })
    expect(sink.status).toBe(201)
    const upstreamToken = 'Bearer upstream-token-that-must-stay-sealed-0123456789'
    const route = await call('/v1/routes', {
      key: tenant.adminKey,
      body: { name: 'owner', kind: 'openai', upstream_url: 'https://api.example.com/v1', headers: { authorization: upstreamToken } },
    })
    expect(route.status).toBe(201)
    const browser = await signIn(tenant.adminKey)
    const sessionToken = browser.cookie.split('=')[1]!
    // The key works, so it is stored in some form; the session too.
    expect((await call('/v1/models', { key })).status).toBe(200)

    const cells = (await everyCell()).join('\n')
    const secrets = {
      'admin key': tenant.adminKey,
      key,
      'key (without its public prefix)': key.slice(12),
      'webhook secret': webhook.secret,
      'webhook secret (base64 part)': webhook.secret.slice('whsec_'.length),
      'sink credential': sinkCredential,
      'upstream header': 'upstream-token-that-must-stay-sealed',
      'dashboard session': sessionToken,
    }
    for (const [name, secret] of Object.entries(secrets)) {
      expect(cells.includes(secret), `${name} found in the database`).toBe(false)
    }
  })

  it('never repeats a presented key or token in an error', async () => {
    const tenant = await createTenant('secrets-in-errors')
    const wrong = `moat_sk_${'Q'.repeat(40)}`
    const malformed = 'moat_sk_not-a-key-but-looks-secret-9f8e7d6c5b4a'
    for (const presented of [wrong, malformed, `${tenant.adminKey}x`]) {
      const res = await call('/v1/models', { key: presented })
      expect(res.status).toBe(401)
      const text = await res.text()
      expect(text).not.toContain(presented)
      expect(text).not.toContain(presented.slice(12))
    }
    const admin = await call('/admin/tenants', { headers: { authorization: 'Bearer wrong-admin-token-123456' }, body: { name: 'x' } })
    expect(admin.status).toBe(401)
    expect(await admin.text()).not.toContain('wrong-admin-token-123456')
  })
})
