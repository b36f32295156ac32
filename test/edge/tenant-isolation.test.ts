import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { bytesOf, call, createTenant, json, putArtifact, registerModel } from './helpers.ts'

// Every route with an id in its path, generated from the OpenAPI document,
// called with another tenant's key and this tenant's real ids: never a 2xx,
// never a byte of the other tenant's objects.
describe('tenant isolation on every route', () => {
  it('answers another tenant’s ids as if they did not exist', async () => {
    const owner = await createTenant('owner')
    const stranger = await createTenant('stranger')
    const modelId = await registerModel(owner, 'isolated')
    await putArtifact(owner, modelId, '1', bytesOf(32))
    const job = await json(await call('/v1/jobs', { key: owner.adminKey, body: { type: 'verify_artifact', model: modelId } }))
    const upload = await json(await call('/v1/uploads', { key: owner.adminKey, body: { filename: 'f.bin', bytes: 10 } }))
    const hook = await json(await call('/v1/webhooks', { key: owner.adminKey, body: { url: 'http://127.0.0.1:9/h', events: ['*'] } }))
    const sink = await json(await call('/v1/billing/sinks', { key: owner.adminKey, body: { provider: 'lago', url: 'http://127.0.0.1:9/l', credential: 'c', customer: 'x' } }))
    const route = await json(await call('/v1/routes', { key: owner.adminKey, body: { name: 'r', kind: 'openai', upstream_url: 'http://127.0.0.1:9/v1' } }))
    const keys = await json(await call('/v1/keys', { key: owner.adminKey }))
    const ids: Record<string, string> = {
      '/v1/models/': modelId,
      '/v1/jobs/': job.id,
      '/v1/uploads/': upload.id,
      '/v1/webhooks/': hook.id,
      '/v1/billing/sinks/': sink.id,
      '/v1/routes/': route.id,
      '/v1/keys/': keys.data[0].id,
    }
    const secrets = [owner.tenantId, modelId, job.id, upload.id, hook.id, sink.id, route.id]

    const doc = await json(await call('/openapi.json'))
    let checked = 0
    for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      const prefix = Object.keys(ids).find((candidate) => template.startsWith(candidate) && template.slice(candidate.length).startsWith('{id}'))
      if (!prefix) continue
      const path = template.replace('{id}', ids[prefix]!).replace('{version}', '1').replace(/\{[^}]+\}/g, 'x_1')
      for (const method of Object.keys(item)) {
        const res = await call(path, {
          method: method.toUpperCase(),
          key: stranger.adminKey,
          ...(method === 'get' || method === 'delete' ? {} : method === 'put' && path.includes('/files/') ? { raw: bytesOf(4) } : { body: {} }),
        })
        const text = await res.text()
        expect(res.status, `${method.toUpperCase()} ${template}`).toBeGreaterThanOrEqual(400)
        for (const secret of secrets) expect(text, `${method.toUpperCase()} ${template}`).not.toContain(secret)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(25)
    // And nothing of the owner's changed.
    const model = await json(await call(`/v1/models/${modelId}`, { key: owner.adminKey }))
    expect(model.versions).toHaveLength(1)
    expect((await env.DB.prepare('SELECT status FROM jobs WHERE id = ?1').bind(job.id).first())).toEqual({ status: 'queued' })
    expect((await json(await call(`/v1/webhooks`, { key: owner.adminKey }))).data).toHaveLength(1)
  })
})
