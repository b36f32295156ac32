import { afterAll, beforeAll, expect, it } from 'vitest'
import { ADMIN_TOKEN, startStack, tenantClient, waitFor, type Stack } from './stack.ts'

let stack: Stack

beforeAll(async () => {
  // Every usage batch is written, crashes before it is acknowledged, and is
  // delivered again.
  stack = await startStack({ MOAT_CHAOS_USAGE_FAILURE_RATE: '1' })
})

afterAll(async () => {
  await stack?.stop()
})

it('keeps the ledger equal to the requests served, while the usage consumer crashes and redelivers', async () => {
  const traffic = await tenantClient(stack.edge)
  const readerKey = (await traffic.call('/v1/keys', { body: { name: 'reader', scopes: ['usage:read'] } })).body.key as string
  const trafficKeyId = (await traffic.call('/v1/keys')).body.data.find((key: { name: string }) => key.name === 'admin').id as string
  const start = Math.floor(Date.now() / 1000) - 5

  let served = 0
  const worker = async () => {
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${stack.edge.url}/v1/models`, { headers: { authorization: `Bearer ${traffic.key}` } })
      await res.arrayBuffer()
      if (res.status === 200) served++
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  expect(served).toBeGreaterThan(200)
  // The two setup calls above were served through the same key too.
  const expected = served + 2

  const ledgerTotal = async () => {
    const res = await fetch(`${stack.edge.url}/v1/usage?start=${start}&group_by=key`, { headers: { authorization: `Bearer ${readerKey}` } })
    const body = (await res.json()) as { data: { meter: string; key_id: string | null; value: number }[] }
    return body.data.find((row) => row.meter === 'requests' && row.key_id === trafficKeyId)?.value ?? 0
  }
  await waitFor('the ledger to catch up', async () => ((await ledgerTotal()) === expected ? true : undefined), 90_000)
  // Redeliveries still in flight must not add anything on top.
  await new Promise((resolve) => setTimeout(resolve, 4000))
  expect(await ledgerTotal()).toBe(expected)
  expect(stack.edge.output()).toMatch(/chaos: the usage consumer crashed/)
})

// The dashboard's request observations ride the same queue through the same
// crashes: every request, refused ones included, is seen exactly once, and
// none of the refusals reaches the ledger.
it('counts every request once in the dashboard’s observations, 429s included and unbilled, while the consumer crashes', async () => {
  const traffic = await tenantClient(stack.edge)
  const setLimit = (limits: unknown[]) =>
    fetch(`${stack.edge.url}/admin/tenants/${traffic.tenantId}/limits`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ limits }),
    })
  expect((await setLimit([{ meter: 'requests', period: 'day', limit: 100 }])).status).toBe(200)
  const statuses: number[] = []
  const worker = async () => {
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${stack.edge.url}/v1/models`, { headers: { authorization: `Bearer ${traffic.key}` } })
      await res.arrayBuffer()
      statuses.push(res.status)
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  expect(statuses.filter((s) => s === 200)).toHaveLength(100)
  expect(statuses.filter((s) => s === 429)).toHaveLength(60)
  expect((await setLimit([])).status).toBe(200)

  // The dashboard is read outside /v1: reading it adds nothing to what it counts.
  const session = await dashboardSession(traffic.key)
  const overview = async () => {
    const html = await (await fetch(`${stack.edge.url}/dashboard?days=1`, { headers: { cookie: session } })).text()
    const card = (id: string) => /<strong>([^<]*)<\/strong>/.exec(html.slice(html.indexOf(`id="${id}"`)))![1]!
    return { seen: Number(card('observed')), refused: card('refused'), billed: Number(card('requests')) }
  }
  const expected = { seen: 160, refused: '60 (37.5%)', billed: 100 }
  await waitFor('the observations and the ledger to catch up', async () => {
    const now = await overview()
    return now.seen === expected.seen && now.billed === expected.billed ? true : undefined
  }, 90_000)
  // Redeliveries still in flight must not add anything on top.
  await new Promise((resolve) => setTimeout(resolve, 4000))
  expect(await overview()).toEqual(expected)
  const usage = await fetch(`${stack.edge.url}/v1/usage?start=${Math.floor(Date.now() / 1000) - 3600}`, { headers: { authorization: `Bearer ${traffic.key}` } })
  const ledger = ((await usage.json()) as { data: { meter: string; value: number }[] }).data
  expect(ledger.find((row) => row.meter === 'requests')?.value).toBe(100)
})

async function dashboardSession(key: string): Promise<string> {
  const form = await fetch(`${stack.edge.url}/dashboard/sign-in`)
  const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())![1]!
  const cookie = form.headers.getSetCookie()[0]!.split(';')[0]!
  const signedIn = await fetch(`${stack.edge.url}/dashboard/sign-in`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, key }),
    redirect: 'manual',
  })
  expect(signedIn.status).toBe(303)
  return signedIn.headers.getSetCookie().find((c) => c.startsWith('moat_session='))!.split(';')[0]!
}
