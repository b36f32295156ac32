import { describe, expect, it } from 'vitest'
import { call, createKey, createTenant, json } from './helpers.ts'

// Every route the OpenAPI document lists (and the OpenAI-compatible proxy
// routes, which it does not), called without a key, with a malformed one and
// with a revoked one: 401 in the envelope, everywhere.
const PUBLIC = new Set(['/healthz', '/openapi.json'])
const UNDOCUMENTED = [
  { method: 'POST', path: '/v1/chat/completions' },
  { method: 'POST', path: '/v1/proxy/x_1/classify' },
  { method: 'GET', path: '/v1/proxy/x_1/anything' },
]

async function operations() {
  const doc = await json(await call('/openapi.json'))
  const out: { method: string; path: string }[] = [...UNDOCUMENTED]
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    if (PUBLIC.has(path)) continue
    for (const method of Object.keys(item)) out.push({ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, 'x_1') })
  }
  return out
}

describe('authentication on every route', () => {
  it('lists a good number of routes', async () => {
    expect((await operations()).length).toBeGreaterThan(40)
  })

  it('answers 401 without a key, with a malformed key and with a revoked key', async () => {
    const tenant = await createTenant()
    const revoked = await createKey(tenant)
    const keys = await json(await call('/v1/keys', { key: tenant.adminKey }))
    const id = keys.data.find((k: { scopes: string[] }) => !k.scopes.includes('admin')).id
    expect((await call(`/v1/keys/${id}`, { method: 'DELETE', key: tenant.adminKey })).status).toBe(200)
    for (const { method, path } of await operations()) {
      for (const authorization of [undefined, 'Bearer not-a-key', `Bearer ${revoked}`]) {
        const res = await call(`${path}${path.includes('usage') ? '?start=1' : ''}`, {
          method,
          headers: authorization ? { authorization } : {},
          ...(method === 'GET' || method === 'DELETE' ? {} : { raw: '{}' }),
        })
        expect(res.status, `${method} ${path} with ${authorization ?? 'no key'}`).toBe(401)
        const body = await json(res)
        expect(body.error.type).toBe('authentication_error')
        expect(res.headers.get('x-request-id')).toMatch(/^req_/)
      }
    }
  })
})
