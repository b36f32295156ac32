import { exports } from 'cloudflare:workers'
import { expect, it } from 'vitest'

it('answers healthz', async () => {
  const res = await exports.default.fetch('http://moat.test/healthz')
  expect(res.status).toBe(200)
  expect(res.headers.get('x-request-id')).toMatch(/^req_/)
  expect(await res.json()).toEqual({ status: 'ok', database: 'ok' })
})
