import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { fetchPage, post, signIn } from './dashboard-browser.ts'
import { ADMIN_TOKEN, bytesOf, call, createKey, createTenant, deliver, jobRow, json, putArtifact, keyIdOf, registerModel, type Tenant } from './helpers.ts'

// The dashboard pieces beyond the first pages: starting jobs, lineage on the
// models page, usage per key, moderation by category.

afterEach(() => vi.restoreAllMocks())

async function safetensorsModel(tenant: Tenant, name: string, seed: number) {
  const id = await registerModel(tenant, name, 'safetensors')
  expect((await putArtifact(tenant, id, '1', bytesOf(64, seed))).status).toBe(201)
  return id
}

const linearYaml = (a: string, b: string) => `merge_method: linear
models:
  - model: ${a}/1
    parameters: {weight: 0.5}
  - model: ${b}
    parameters: {weight: 0.5}
`

describe('starting jobs from the dashboard', () => {
  it('starts a verification of a chosen version, billed as one jobs.created, and shows it', async () => {
    const tenant = await createTenant('dash-start-verify')
    const model = await safetensorsModel(tenant, 'checked', 4)
    const browser = await signIn(tenant.adminKey)
    const page = await (await fetchPage('/dashboard/jobs', { cookie: browser.cookie })).text()
    expect(page).toContain(`<option value="${model}/1">checked · 1 (staging)</option>`)
    const jobs = vi.spyOn(env.JOBS, 'send')
    const usage = vi.spyOn(env.USAGE, 'send')
    const res = await post('/dashboard/jobs/verify', browser, { csrf: browser.csrf, target: `${model}/1` })
    expect(res.status).toBe(303)
    const id = /^\/dashboard\/jobs\/(job_\w+)$/.exec(res.headers.get('location')!)![1]!
    expect(jobs).toHaveBeenCalledWith({ job_id: id })
    expect(await jobRow(id)).toMatchObject({ tenant_id: tenant.tenantId, type: 'verify_artifact', status: 'queued' })
    await vi.waitFor(() => expect(usage.mock.calls.map(([e]) => e).filter((e) => e.meter === 'jobs.created')).toHaveLength(1))
    const event = usage.mock.calls.map(([e]) => e).find((e) => e.meter === 'jobs.created')!
    expect(event).toMatchObject({ tenant_id: tenant.tenantId, key_id: await keyIdOf(tenant, tenant.adminKey), value: 1 })
    // Recorded twice, billed once: the event id is per request and meter.
    await deliver('moat-usage', [event, event])
    const billed = await env.DB.prepare(`SELECT sum(value) AS n FROM usage_events WHERE tenant_id = ?1 AND meter = 'jobs.created'`).bind(tenant.tenantId).first<{ n: number }>()
    expect(billed!.n).toBe(1)
    const detail = await (await fetchPage(`/dashboard/jobs/${id}`, { cookie: browser.cookie })).text()
    expect(detail).toContain('<dd id="job-status" aria-live="polite">queued</dd>')
  })

  it('starts a job once when its form is submitted twice, and shows the same job both times', async () => {
    const tenant = await createTenant('dash-double-submit')
    const model = await safetensorsModel(tenant, 'twice', 4)
    const browser = await signIn(tenant.adminKey)
    const page = await (await fetchPage('/dashboard/jobs', { cookie: browser.cookie })).text()
    const tokens = [...page.matchAll(/name="submission" value="([0-9A-Za-z]{24})"/g)].map((match) => match[1]!)
    // One token per form, and a fresh one each time the page is drawn.
    expect(tokens).toHaveLength(2)
    expect(new Set(tokens).size).toBe(2)
    const fields = { csrf: browser.csrf, target: `${model}/1`, submission: tokens[0]! }
    const [first, second] = await Promise.all([post('/dashboard/jobs/verify', browser, fields), post('/dashboard/jobs/verify', browser, fields)])
    const again = await post('/dashboard/jobs/verify', browser, fields)
    const created = await env.DB.prepare(`SELECT id FROM jobs WHERE tenant_id = ?1`).bind(tenant.tenantId).all<{ id: string }>()
    expect(created.results).toHaveLength(1)
    const location = `/dashboard/jobs/${created.results[0]!.id}`
    expect([first, second, again].map((res) => res.status)).toEqual([303, 303, 303])
    // Both answers of the race go to a job page or, for the one that lost it
    // while the first was still starting, to the jobs list; afterwards, to the job.
    for (const res of [first, second]) expect([location, '/dashboard/jobs']).toContain(res.headers.get('location'))
    expect(again.headers.get('location')).toBe(location)
    // A new page, a new token: the same form starts a second job.
    const next = [...(await (await fetchPage('/dashboard/jobs', { cookie: browser.cookie })).text()).matchAll(/name="submission" value="([0-9A-Za-z]{24})"/g)][0]![1]!
    expect((await post('/dashboard/jobs/verify', browser, { ...fields, submission: next })).status).toBe(303)
    expect((await env.DB.prepare(`SELECT count(*) AS n FROM jobs WHERE tenant_id = ?1`).bind(tenant.tenantId).first<{ n: number }>())!.n).toBe(2)
  })

  it('starts a merge from a YAML config, and explains a bad one on the page with the config kept', async () => {
    const tenant = await createTenant('dash-start-merge')
    const [a, b] = [await safetensorsModel(tenant, 'a', 2), await safetensorsModel(tenant, 'b', 3)]
    const browser = await signIn(tenant.adminKey)
    const res = await post('/dashboard/jobs/merge', browser, { csrf: browser.csrf, config: linearYaml(a, b), output_version: 'from-dashboard' })
    expect(res.status).toBe(303)
    const id = /(job_\w+)$/.exec(res.headers.get('location')!)![1]!
    const row = await jobRow(id)
    expect(row).toMatchObject({ type: 'merge', status: 'queued' })
    expect(JSON.parse(row!.params)).toMatchObject({ output: { model_id: a, version: 'from-dashboard' }, config: { merge_method: 'linear' } })

    const bad = await post('/dashboard/jobs/merge', browser, { csrf: browser.csrf, config: 'merge_method: [', output_version: '' })
    expect(bad.status).toBe(400)
    const html = await bad.text()
    expect(html).toContain('role="alert">Invalid merge config: invalid YAML')
    expect(html).toContain('>merge_method: [</textarea>')
    // The output lands on the first model, which already has a version 1.
    const taken = await post('/dashboard/jobs/merge', browser, { csrf: browser.csrf, config: linearYaml(a, b), output_version: '1' })
    expect(taken.status).toBe(409)
    expect(await taken.text()).toContain(`Model ${a} already has a version &#39;1&#39;`)
    expect((await post('/dashboard/jobs/merge', browser, { csrf: browser.csrf, config: linearYaml(a, b), output_version: '../x' })).status).toBe(400)
    const empty = await post('/dashboard/jobs/verify', browser, { csrf: browser.csrf, target: '' })
    expect(empty.status).toBe(400)
  })

  it('refuses without the CSRF token, another tenant’s models, and a spent quota', async () => {
    const tenant = await createTenant('dash-start-refusals')
    const intruder = await createTenant('dash-start-intruder')
    const model = await safetensorsModel(tenant, 'mine', 5)
    const browser = await signIn(intruder.adminKey)
    const jobs = vi.spyOn(env.JOBS, 'send')
    expect((await post('/dashboard/jobs/verify', browser, { target: `${model}/1` })).status).toBe(403)
    expect((await post('/dashboard/jobs/verify', browser, { csrf: browser.csrf, target: `${model}/1` })).status).toBe(404)
    expect((await post('/dashboard/jobs/merge', browser, { csrf: browser.csrf, config: linearYaml(model, model), output_version: '' })).status).toBe(404)

    const limits = { limits: [{ meter: 'jobs.created', period: 'day', limit: 1 }] }
    await call(`/admin/tenants/${tenant.tenantId}/limits`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: limits })
    const owner = await signIn(tenant.adminKey)
    expect((await post('/dashboard/jobs/verify', owner, { csrf: owner.csrf, target: `${model}/1` })).status).toBe(303)
    await vi.waitFor(async () => expect((await json(await call('/v1/usage/limits', { key: tenant.adminKey }))).data[0].used).toBe(1))
    const refused = await post('/dashboard/jobs/verify', owner, { csrf: owner.csrf, target: `${model}/1` })
    expect(refused.status).toBe(429)
    expect(await refused.text()).toContain('Quota exceeded: 1 of 1 jobs.created this day')
    expect(jobs).toHaveBeenCalledTimes(1)
  })
})

describe('lineage on the models page', () => {
  it('shows where a merged version came from: method, job and each input with its SHA-256', async () => {
    const tenant = await createTenant('dash-lineage')
    const other = await createTenant('dash-lineage-other')
    const [a, b] = [await safetensorsModel(tenant, 'parent-a', 2), await safetensorsModel(tenant, 'parent-b', 3)]
    const browser = await signIn(tenant.adminKey)
    const started = await post('/dashboard/jobs/merge', browser, { csrf: browser.csrf, config: linearYaml(a, b), output_version: 'child' })
    const id = /(job_\w+)$/.exec(started.headers.get('location')!)![1]!
    await env.DB.prepare(`UPDATE jobs SET status = 'running', attempts = 1, started_at = ?2 WHERE id = ?1`).bind(id, Date.now()).run()
    const result = {
      model_id: a,
      version: 'child',
      files: [{ name: 'model.safetensors', artifact_key: `tenants/${tenant.tenantId}/uploads/u1/model.safetensors`, sha256: 'c'.repeat(64), size: 64 }],
      tensors: 1,
      input_bytes: 128,
      output_bytes: 64,
      runner_seconds: 0.1,
      non_finite: [],
    }
    await deliver('moat-results', [{ kind: 'result', job_id: id, runner_id: null, report: { attempt: 1, status: 'succeeded', result } }])
    expect((await jobRow(id))!.status).toBe('succeeded')
    const job = await (await fetchPage(`/dashboard/jobs/${id}`, { cookie: browser.cookie })).text()
    expect(job).toContain(`<a id="job-output" href="/dashboard/models#model-${a}">${a} · child</a>`)
    const html = await (await fetchPage('/dashboard/models', { cookie: browser.cookie })).text()
    const childRow = /<tr id="version-[^"]+"><td>child<\/td>.*?<\/tr>/s.exec(html)![0]
    expect(childRow).toContain(`linear by <a href="/dashboard/jobs/${id}">${id}</a> of:`)
    expect(childRow).toContain(`<a href="#model-${a}">parent-a · 1</a>`)
    expect(childRow).toContain(`<a href="#model-${b}">parent-b · 1</a>`)
    const lineage = await json(await call(`/v1/models/${a}/versions/child/lineage`, { key: tenant.adminKey }))
    for (const input of lineage.inputs) expect(childRow).toContain(input.files[0].sha256)
    const uploaded = /<tr id="version-[^"]+"><td>1<\/td>.*?<\/tr>/s.exec(html)![0]
    expect(uploaded).toContain('<td><span>uploaded</span></td>')
    const intruder = await signIn(other.adminKey)
    expect(await (await fetchPage('/dashboard/models', { cookie: intruder.cookie })).text()).not.toContain(id)
  })
})

describe('usage per key', () => {
  it('draws one chart per meter for the chosen key, and refuses a key of another tenant', async () => {
    const tenant = await createTenant('dash-usage-keys')
    const other = await createTenant('dash-usage-keys-other')
    const second = await createKey(tenant, ['usage:read'])
    const [firstId, secondId] = [await keyIdOf(tenant, tenant.adminKey), await keyIdOf(tenant, second)]
    const today = Date.now() - (Date.now() % 86_400_000)
    const insert = `INSERT INTO usage_rollups (tenant_id, meter, granularity, bucket_start, key_id, value, events) VALUES (?1, ?2, 'day', ?3, ?4, ?5, 1)`
    await env.DB.prepare(insert).bind(tenant.tenantId, 'requests', today, firstId, 7).run()
    await env.DB.prepare(insert).bind(tenant.tenantId, 'requests', today, secondId, 3).run()
    await env.DB.prepare(insert).bind(tenant.tenantId, 'tokens.input', today, secondId, 500).run()
    const browser = await signIn(tenant.adminKey)
    const all = await (await fetchPage('/dashboard/usage?days=1', { cookie: browser.cookie })).text()
    expect(all).toMatch(/id="meter-requests"><h2>requests<\/h2><p>Total: <strong>10<\/strong>/)
    expect(all).toContain(`<option value="${secondId}">`)
    const one = await (await fetchPage(`/dashboard/usage?days=1&key=${firstId}`, { cookie: browser.cookie })).text()
    expect(one).toMatch(/id="meter-requests"><h2>requests<\/h2><p>Total: <strong>7<\/strong>/)
    expect(one).not.toContain('id="meter-tokens.input"')
    expect(one).toContain(`<option value="${firstId}" selected="">`)
    const two = await (await fetchPage(`/dashboard/usage?days=1&key=${secondId}`, { cookie: browser.cookie })).text()
    expect(two.match(/<svg role="img"/g)).toHaveLength(2)
    expect(two).toMatch(/Total: <strong>3<\/strong>/)
    expect(two).toMatch(/Total: <strong>500<\/strong>/)
    expect(two).toContain('aria-label="tokens.input per day of ')
    const otherKey = await keyIdOf(other, other.adminKey)
    expect((await fetchPage(`/dashboard/usage?key=${otherKey}`, { cookie: browser.cookie })).status).toBe(400)
  })
})

describe('moderation by category', () => {
  it('groups the period’s events by category with their actions and sources, never any text', async () => {
    const tenant = await createTenant('dash-mod-groups')
    const other = await createTenant('dash-mod-groups-other')
    const insert = `INSERT INTO moderation_events (id, tenant_id, key_id, source, direction, action, categories, scores, request_id, created_at)
      VALUES (?1, ?2, NULL, ?3, 'input', ?4, ?5, '{}', 'req_x', ?6)`
    const now = Date.now()
    const seed = [
      [tenant, 'chat', 'block', '["violence","harassment"]', now],
      [tenant, 'chat', 'flag', '["harassment"]', now],
      [tenant, 'moderations', 'flag', '["harassment"]', now],
      [tenant, 'chat', 'block', '[]', now],
      [tenant, 'chat', 'flag', '["self-harm"]', now - 10 * 86_400_000],
      [other, 'chat', 'flag', '["sexual"]', now],
    ] as const
    for (const [t, source, action, categories, at] of seed) {
      await env.DB.prepare(insert).bind(`mev_${crypto.randomUUID()}`, t.tenantId, source, action, categories, at).run()
    }
    const browser = await signIn(tenant.adminKey)
    const html = await (await fetchPage('/dashboard/moderation?days=7', { cookie: browser.cookie })).text()
    const rows = [...html.matchAll(/<tr id="category-([^"]+)"><th scope="row">[^<]+<\/th>((?:<td>[^<]*<\/td>)+)<\/tr>/g)].map((m) => [
      m[1],
      ...[...m[2]!.matchAll(/<td>([^<]*)<\/td>/g)].map((cell) => cell[1]).slice(0, 6),
    ])
    expect(rows).toEqual([
      ['harassment', '3', '1', '0', '2', '0', 'chat, moderations'],
      ['(blocklist)', '1', '1', '0', '0', '0', 'chat'],
      ['violence', '1', '1', '0', '0', '0', 'chat'],
    ])
    expect(html).not.toContain('self-harm</th>')
    expect(html).not.toContain('sexual')
    const month = await (await fetchPage('/dashboard/moderation?days=30', { cookie: browser.cookie })).text()
    expect(month).toContain('<tr id="category-self-harm">')
    expect((await fetchPage('/dashboard/moderation?days=2', { cookie: browser.cookie })).status).toBe(400)
  })
})
