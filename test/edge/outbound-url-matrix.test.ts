import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { beforeAll, describe, expect, it } from 'vitest'
import worker from '../../src/edge/index.ts'
import { createTenant, json, registerModel, type Tenant } from './helpers.ts'

// Every URL a tenant can set, against every kind of address Moat must never
// be made to call: refused with 400 naming the field, while a public https
// URL is accepted in the same place (so the refusals are the check's doing).
// Loopback is refused too: this runs the edge without the local-development
// allowance the other tests have.
const strictEnv = { ...env, MOAT_OUTBOUND_ALLOW_LOOPBACK: 'false' }

async function strictCall(path: string, key: string, body: unknown, method = 'POST'): Promise<Response> {
  const ctx = createExecutionContext()
  const res = await worker.fetch(
    new Request(`http://moat.test${path}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    strictEnv,
    ctx,
  )
  await waitOnExecutionContext(ctx)
  return res
}

const FORBIDDEN = [
  'http://api.example.com/v1', // not https
  'https://user:secret@api.example.com/v1', // credentials
  'https://127.0.0.1/v1',
  'https://localhost/v1',
  'https://[::1]/v1',
  'https://10.1.2.3/v1',
  'https://172.16.0.5/v1',
  'https://192.168.1.1/v1',
  'https://169.254.169.254/latest/meta-data',
  'https://100.64.0.1/v1', // shared address space
  'https://0x7f000001/v1', // loopback, in hex
  'https://2130706433/v1', // loopback, in decimal
  'https://[::ffff:10.0.0.1]/v1', // IPv4-mapped private
  'https://[fd00::1]/v1', // unique local
  'https://metadata.google.internal/computeMetadata/v1',
  'https://intranet/v1', // single-label name
  'https://printer.local/v1',
  'https://224.0.0.1/v1', // multicast
]
const ALLOWED = 'https://api.example.com/v1'

type Place = { name: string; param: RegExp; set: (tenant: Tenant, url: string, n: number) => Promise<Response> }

let routeId = ''
const PLACES: Place[] = [
  { name: 'webhook url', param: /^url$/, set: (t, url) => strictCall('/v1/webhooks', t.adminKey, { url, events: ['job.*'] }) },
  { name: 'billing sink url', param: /^url$/, set: (t, url) => strictCall('/v1/billing/sinks', t.adminKey, { provider: 'openmeter', url, credential: 'om_key', customer: 'c' }) },
  { name: 'route upstream_url', param: /^upstream_url$/, set: (t, url, n) => strictCall('/v1/routes', t.adminKey, { name: `r${n}`, kind: 'openai', upstream_url: url }) },
  { name: 'route targets[].url', param: /^targets\.1\.url$/, set: (t, url, n) => strictCall('/v1/routes', t.adminKey, { name: `t${n}`, kind: 'openai', targets: [{ url: ALLOWED }, { url }] }) },
  { name: 'route update upstream_url', param: /^upstream_url$/, set: (t, url) => strictCall(`/v1/routes/${routeId}`, t.adminKey, { upstream_url: url }, 'PATCH') },
]

let tenant: Tenant
beforeAll(async () => {
  tenant = await createTenant('outbound-matrix')
  const created = await strictCall('/v1/routes', tenant.adminKey, { name: 'existing', kind: 'openai', upstream_url: ALLOWED })
  expect(created.status).toBe(201)
  routeId = (await json(created)).id
})

describe('every URL a tenant can set passes the outbound checks', () => {
  for (const place of PLACES) {
    it(`${place.name}: refuses private, internal and disguised addresses, accepts a public https URL`, async () => {
      let n = 0
      for (const url of FORBIDDEN) {
        const res = await place.set(tenant, url, n++)
        const body = await json(res)
        expect(res.status, `${place.name} = ${url}: ${JSON.stringify(body)}`).toBe(400)
        expect(body.error.param, url).toMatch(place.param)
      }
      const ok = await place.set(tenant, ALLOWED, n++)
      expect(ok.status, await ok.clone().text()).toBeLessThan(300)
    })
  }

  it('ownership verification against a suspect endpoint: refuses the same addresses, before looking at the model', async () => {
    const model = await registerModel(tenant)
    for (const url of FORBIDDEN) {
      const res = await strictCall(`/v1/models/${model}/ownership/verify`, tenant.adminKey, { endpoint: { url } })
      expect(res.status, url).toBe(400)
      const error = (await json(res)).error
      expect(error.param, `${url}: ${error.message}`).toBe('endpoint.url')
    }
  })
})
