import { afterAll, beforeAll, expect, it } from 'vitest'
import { startStack, tenantClient, waitFor, type Stack } from './stack.ts'

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
