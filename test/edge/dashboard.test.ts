import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { cookiePair, fetchPage, post, signIn, startSignIn } from './dashboard-browser.ts'
import { bytesOf, call, createKey, createTenant, putArtifact, registerModel, sha256Hex, type Tenant } from './helpers.ts'

async function seedTraffic(tenant: Tenant, requests: number, actions: string[]) {
  const today = Date.now() - (Date.now() % 86_400_000)
  await env.DB.prepare(
    `INSERT INTO usage_rollups (tenant_id, meter, granularity, bucket_start, key_id, value, events) VALUES
       (?1, 'requests', 'day', ?2, 'key_a', ?3, ?3), (?1, 'requests', 'day', ?2 - 86400000, 'key_a', 5, 5),
       (?1, 'tokens', 'day', ?2, 'key_a', 1234, 3)`,
  )
    .bind(tenant.tenantId, today, requests)
    .run()
  for (const [i, action] of actions.entries()) {
    await env.DB.prepare(
      `INSERT INTO moderation_events (id, tenant_id, key_id, source, direction, action, categories, scores, request_id, created_at)
       VALUES (?1, ?2, NULL, 'moderations', 'input', ?3, '["harassment"]', '{"harassment":0.9}', ?4, ?5)`,
    )
      .bind(`mev_${crypto.randomUUID()}`, tenant.tenantId, action, `req_${i}`, Date.now())
      .run()
  }
}

async function seedJob(tenant: Tenant, status: string, done: number, total: number): Promise<string> {
  const id = `job_${crypto.randomUUID().replaceAll('-', '').slice(0, 26)}`
  const now = Date.now()
  await env.DB.prepare(
    `INSERT INTO jobs (id, tenant_id, type, params, status, progress_done, progress_total, progress_unit, created_at, updated_at)
     VALUES (?1, ?2, 'verify_artifact', '{}', ?3, ?4, ?5, 'bytes', ?6, ?6)`,
  )
    .bind(id, tenant.tenantId, status, done, total, now)
    .run()
  return id
}

describe('dashboard sign-in', () => {
  it('sets an HttpOnly, Secure, SameSite=Strict session cookie with a 12 h expiry', async () => {
    const tenant = await createTenant('dash-cookie')
    const form = await startSignIn()
    const res = await post('/dashboard/sign-in', { cookie: form.cookie, csrf: form.csrf }, { csrf: form.csrf, key: tenant.adminKey })
    expect(res.status).toBe(303)
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('moat_session='))!
    expect(cookie).toMatch(/; HttpOnly/)
    expect(cookie).toMatch(/; Secure/)
    expect(cookie).toMatch(/; SameSite=Strict/)
    expect(cookie).toMatch(/; Path=\/dashboard/)
    expect(cookie).toMatch(/; Max-Age=43200/)
    const row = await env.DB.prepare('SELECT * FROM dashboard_sessions WHERE tenant_id = ?1').bind(tenant.tenantId).first<any>()
    expect(row.expires_at - row.created_at).toBe(12 * 3600 * 1000)
  })

  it('leaves Secure off on loopback, where the dashboard is served over plain http', async () => {
    const tenant = await createTenant('dash-loopback')
    const form = await startSignIn('http://127.0.0.1:8787')
    const body = new URLSearchParams({ csrf: form.csrf, key: tenant.adminKey })
    const res = await fetchPage('/dashboard/sign-in', { method: 'POST', cookie: form.cookie, body }, 'http://127.0.0.1:8787')
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('moat_session='))!
    expect(cookie).toMatch(/; HttpOnly/)
    expect(cookie).not.toMatch(/Secure/)
  })

  it('refuses a sign-in without its CSRF token, a wrong key and a key without the admin scope', async () => {
    const tenant = await createTenant('dash-refusals')
    const form = await startSignIn()
    const browser = { cookie: form.cookie, csrf: form.csrf }
    expect((await post('/dashboard/sign-in', browser, { key: tenant.adminKey })).status).toBe(403)
    expect((await post('/dashboard/sign-in', browser, { csrf: 'forged', key: tenant.adminKey })).status).toBe(403)
    const wrong = await post('/dashboard/sign-in', browser, { csrf: form.csrf, key: `moat_sk_${'x'.repeat(40)}` })
    expect(wrong.status).toBe(401)
    expect(await wrong.text()).toContain('Invalid API key')
    const narrow = await createKey(tenant, ['jobs:read'])
    const refused = await post('/dashboard/sign-in', browser, { csrf: form.csrf, key: narrow })
    expect(refused.status).toBe(403)
    expect(refused.headers.getSetCookie().some((c) => c.startsWith('moat_session='))).toBe(false)
  })

  it('sends a visitor without a session to the sign-in page, and refuses their POSTs', async () => {
    const res = await fetchPage('/dashboard/keys')
    expect(res.status).toBe(303)
    expect(res.headers.get('location')).toBe('/dashboard/sign-in')
    const forged = await fetchPage('/dashboard/keys', { method: 'POST', cookie: 'moat_session=made-up', body: new URLSearchParams({ name: 'x' }) })
    expect(forged.status).toBe(401)
  })

  it('signs out: the session row is deleted and the old cookie no longer works', async () => {
    const tenant = await createTenant('dash-sign-out')
    const browser = await signIn(tenant.adminKey)
    const res = await post('/dashboard/sign-out', browser, { csrf: browser.csrf })
    expect(res.status).toBe(303)
    expect(res.headers.getSetCookie().find((c) => c.startsWith('moat_session='))).toMatch(/Max-Age=0/)
    const rows = await env.DB.prepare('SELECT count(*) AS n FROM dashboard_sessions WHERE tenant_id = ?1').bind(tenant.tenantId).first<any>()
    expect(rows.n).toBe(0)
    expect((await fetchPage('/dashboard', { cookie: browser.cookie })).status).toBe(303)
  })

  it('refuses an expired session, and sweeps expired sessions at the next sign-in', async () => {
    const tenant = await createTenant('dash-expiry')
    const browser = await signIn(tenant.adminKey)
    await env.DB.prepare('UPDATE dashboard_sessions SET expires_at = ?2 WHERE tenant_id = ?1').bind(tenant.tenantId, Date.now() - 1).run()
    expect((await fetchPage('/dashboard', { cookie: browser.cookie })).status).toBe(303)
    await signIn(tenant.adminKey)
    const rows = await env.DB.prepare('SELECT expires_at FROM dashboard_sessions WHERE tenant_id = ?1').bind(tenant.tenantId).all<any>()
    expect(rows.results).toHaveLength(1)
    expect(rows.results[0].expires_at).toBeGreaterThan(Date.now())
  })

  it('ends the sessions of a key when the key is revoked', async () => {
    const tenant = await createTenant('dash-revoked')
    const second = await createKey(tenant, ['admin'])
    const browser = await signIn(second)
    const keys = await call('/v1/keys', { key: tenant.adminKey })
    const id = ((await keys.json()) as any).data.find((k: any) => second.startsWith(k.prefix)).id
    expect((await call(`/v1/keys/${id}`, { method: 'DELETE', key: tenant.adminKey })).status).toBe(200)
    const res = await fetchPage('/dashboard', { cookie: browser.cookie })
    expect(res.status).toBe(303)
    expect(res.headers.get('location')).toBe('/dashboard/sign-in')
  })
})

describe('dashboard pages', () => {
  it('refuses every POST without the session CSRF token with 403', async () => {
    const tenant = await createTenant('dash-csrf')
    const browser = await signIn(tenant.adminKey)
    expect((await post('/dashboard/keys', browser, { name: 'x', scopes: 'jobs:read' })).status).toBe(403)
    expect((await post('/dashboard/keys', browser, { csrf: 'wrong', name: 'x', scopes: 'jobs:read' })).status).toBe(403)
    expect((await post('/dashboard/sign-out', browser, {})).status).toBe(403)
    expect((await fetchPage('/dashboard', { cookie: browser.cookie })).status).toBe(200)
  })

  it('shows the tenant’s own requests and moderation counts on the overview, not another tenant’s', async () => {
    const tenant = await createTenant('dash-overview')
    const other = await createTenant('dash-overview-other')
    await seedTraffic(tenant, 40, ['flag', 'flag', 'block', 'redact'])
    await seedTraffic(other, 999, ['block', 'block', 'block'])
    const browser = await signIn(tenant.adminKey)
    const today = await (await fetchPage('/dashboard?days=1', { cookie: browser.cookie })).text()
    expect(today).toContain('<h1>Overview</h1>')
    expect(today).toMatch(/id="requests"><span>Billed requests<\/span><strong>40<\/strong>/)
    expect(today).toMatch(/id="moderated"><span>Moderation events<\/span><strong>4<\/strong>/)
    expect(today).toContain('2 (5.0%)')
    expect(today).toContain('1 (2.5%)')
    const week = await (await fetchPage('/dashboard?days=7', { cookie: browser.cookie })).text()
    expect(week).toMatch(/<strong>45<\/strong>/)
    expect(week).not.toContain('999')
    expect((await fetchPage('/dashboard?days=3', { cookie: browser.cookie })).status).toBe(400)
  })

  it('draws one chart per meter on the usage page', async () => {
    const tenant = await createTenant('dash-usage')
    await seedTraffic(tenant, 12, [])
    const browser = await signIn(tenant.adminKey)
    const html = await (await fetchPage('/dashboard/usage?days=7', { cookie: browser.cookie })).text()
    expect(html).toContain('<h1>Usage</h1>')
    expect(html.match(/<svg role="img"/g)).toHaveLength(2)
    expect(html).toContain('aria-label="requests per day"')
    expect(html).toContain('aria-label="tokens per day"')
    expect(html.match(/<rect /g)).toHaveLength(14)
    expect(html).toMatch(/Total: <strong>17<\/strong>/)
    expect(html).toMatch(/Total: <strong>1234<\/strong>/)
  })

  it('creates a key shown once, and revokes it so that the API refuses it', async () => {
    const tenant = await createTenant('dash-keys')
    const browser = await signIn(tenant.adminKey)
    const created = await post('/dashboard/keys', browser, { csrf: browser.csrf, name: 'ci', scopes: ['jobs:read', 'usage:read'] })
    expect(created.status).toBe(200)
    expect(created.headers.get('cache-control')).toBe('no-store')
    const html = await created.text()
    const key = /<code id="new-key">(moat_sk_[0-9A-Za-z]{40})<\/code>/.exec(html)![1]!
    expect((await call('/v1/jobs', { key })).status).toBe(200)
    const list = await (await fetchPage('/dashboard/keys', { cookie: browser.cookie })).text()
    expect(list).not.toContain(key)
    expect(list).toContain('jobs:read, usage:read')
    const id = /<tr id="key-([^"]+)"><td>ci<\/td>/.exec(list)![1]!
    const revoked = await post(`/dashboard/keys/${id}/revoke`, browser, { csrf: browser.csrf })
    expect(revoked.status).toBe(303)
    expect((await call('/v1/jobs', { key })).status).toBe(401)
    expect(await (await fetchPage('/dashboard/keys', { cookie: browser.cookie })).text()).toMatch(/<td>revoked \d{4}-/)
    expect((await post('/dashboard/keys', browser, { csrf: browser.csrf, name: 'bad', scopes: 'root' })).status).toBe(400)
  })

  it('cannot revoke, see or cancel another tenant’s keys and jobs', async () => {
    const tenant = await createTenant('dash-isolation-a')
    const intruder = await createTenant('dash-isolation-b')
    const jobId = await seedJob(tenant, 'running', 3, 10)
    const browser = await signIn(intruder.adminKey)
    const keys = await call('/v1/keys', { key: tenant.adminKey })
    const victimKey = ((await keys.json()) as any).data[0].id
    await post(`/dashboard/keys/${victimKey}/revoke`, browser, { csrf: browser.csrf })
    expect((await call('/v1/keys', { key: tenant.adminKey })).status).toBe(200)
    expect(await (await fetchPage('/dashboard/keys', { cookie: browser.cookie })).text()).not.toContain(victimKey)
    expect((await fetchPage(`/dashboard/jobs/${jobId}`, { cookie: browser.cookie })).status).toBe(404)
    expect((await fetchPage(`/dashboard/jobs/${jobId}/events`, { cookie: browser.cookie })).status).toBe(404)
    expect((await post(`/dashboard/jobs/${jobId}/cancel`, browser, { csrf: browser.csrf })).status).toBe(404)
    expect(await (await fetchPage('/dashboard/jobs', { cookie: browser.cookie })).text()).not.toContain(jobId)
  })

  it('lists jobs, shows one with its progress, streams its events and cancels it', async () => {
    const tenant = await createTenant('dash-jobs')
    const jobId = await seedJob(tenant, 'running', 3, 10)
    const browser = await signIn(tenant.adminKey)
    const list = await (await fetchPage('/dashboard/jobs', { cookie: browser.cookie })).text()
    expect(list).toContain(`href="/dashboard/jobs/${jobId}"`)
    expect(list).toContain('3 / 10 bytes')
    const detail = await (await fetchPage(`/dashboard/jobs/${jobId}`, { cookie: browser.cookie })).text()
    expect(detail).toContain('<progress id="job-progress" max="10" value="3">')
    expect(detail).toContain(`data-events="/dashboard/jobs/${jobId}/events"`)
    const cancelled = await post(`/dashboard/jobs/${jobId}/cancel`, browser, { csrf: browser.csrf })
    expect(cancelled.status).toBe(303)
    // A finished job's stream sends the job once and ends.
    const events = await fetchPage(`/dashboard/jobs/${jobId}/events`, { cookie: browser.cookie })
    expect(events.headers.get('content-type')).toContain('text/event-stream')
    const text = await events.text()
    expect(text).toContain('event: job')
    expect(JSON.parse(/data: (.*)/.exec(text)![1]!)).toMatchObject({ id: jobId, status: 'cancelled' })
    const again = await post(`/dashboard/jobs/${jobId}/cancel`, browser, { csrf: browser.csrf })
    expect(again.status).toBe(409)
    expect(await again.text()).toContain('already cancelled')
  })

  it('shows models with versions, stages, verification and SHA-256, and promotes a version', async () => {
    const tenant = await createTenant('dash-models')
    const intruder = await createTenant('dash-models-other')
    const modelId = await registerModel(tenant, 'digits')
    const bytes = bytesOf(1024, 7)
    expect((await putArtifact(tenant, modelId, '1', bytes)).status).toBeLessThan(300)
    const browser = await signIn(tenant.adminKey)
    const html = await (await fetchPage('/dashboard/models', { cookie: browser.cookie })).text()
    expect(html).toContain('<h2>digits</h2>')
    expect(html).toContain(await sha256Hex(bytes))
    expect(html).toContain('<td>staging</td>')
    expect(html).toContain('<td>unverified</td>')
    const promoted = await post(`/dashboard/models/${modelId}/versions/1/stage`, browser, { csrf: browser.csrf, stage: 'production' })
    expect(promoted.status).toBe(303)
    const version = await (await call(`/v1/models/${modelId}/versions/1`, { key: tenant.adminKey })).json()
    expect(version).toMatchObject({ stage: 'production' })
    expect((await post(`/dashboard/models/${modelId}/versions/1/stage`, browser, { csrf: browser.csrf, stage: 'live' })).status).toBe(400)
    const other = await signIn(intruder.adminKey)
    expect((await post(`/dashboard/models/${modelId}/versions/1/stage`, other, { csrf: other.csrf, stage: 'archived' })).status).toBe(404)
    expect(await (await fetchPage('/dashboard/models', { cookie: other.cookie })).text()).not.toContain('digits')
  })

  it('lists recent moderation events with categories and action, of this tenant only', async () => {
    const tenant = await createTenant('dash-moderation')
    const other = await createTenant('dash-moderation-other')
    await seedTraffic(tenant, 1, ['block'])
    await seedTraffic(other, 1, ['flag', 'flag'])
    const browser = await signIn(tenant.adminKey)
    const html = await (await fetchPage('/dashboard/moderation', { cookie: browser.cookie })).text()
    expect(html).toContain('<h1>Moderation</h1>')
    expect(html).toMatch(/<td>block<\/td><td>harassment<\/td>/)
    expect(html).not.toContain('<td>flag</td>')
  })

  it('ranks guard clients by risk with their signals, and resets one', async () => {
    const tenant = await createTenant('dash-guard')
    const intruder = await createTenant('dash-guard-other')
    const keys = ((await (await call('/v1/keys', { key: tenant.adminKey })).json()) as any).data
    const keyId = keys[0].id
    const signals = JSON.stringify([{ signal: 'prada', value: 0.3, threshold: 0.9, strength: 1, detail: 'distances look synthetic' }])
    const insert = `INSERT INTO guard_clients (tenant_id, client_id, key_id, end_user, risk_bp, action, signals, state_bytes, updated_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 100, ?8)`
    await env.DB.prepare(insert).bind(tenant.tenantId, `${keyId}~low`, keyId, 'low', 1200, 'observe', '[]', Date.now()).run()
    await env.DB.prepare(insert).bind(tenant.tenantId, keyId, keyId, null, 9100, 'block', signals, Date.now()).run()
    const browser = await signIn(tenant.adminKey)
    const html = await (await fetchPage('/dashboard/guard', { cookie: browser.cookie })).text()
    expect(html.indexOf(`id="client-${keyId}"`)).toBeLessThan(html.indexOf(`id="client-${keyId}~low"`))
    expect(html).toContain('<td>0.91</td><td>block</td>')
    expect(html).toContain('prada: 0.3 (threshold 0.9) — distances look synthetic')
    const other = await signIn(intruder.adminKey)
    expect((await post(`/dashboard/guard/clients/${keyId}/reset`, other, { csrf: other.csrf })).status).toBe(404)
    const reset = await post(`/dashboard/guard/clients/${keyId}/reset`, browser, { csrf: browser.csrf })
    expect(reset.status).toBe(303)
    const event = await env.DB.prepare("SELECT * FROM guard_events WHERE client_id = ?1 AND type = 'reset'").bind(keyId).first<any>()
    expect(event).toMatchObject({ tenant_id: tenant.tenantId, action: 'observe' })
    const after = await (await fetchPage('/dashboard/guard', { cookie: browser.cookie })).text()
    expect(after).toMatch(new RegExp(`id="client-${keyId}"><td><code>${keyId}</code></td><td>0.00</td><td>observe</td>`))
  })
})
