import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { afterEach, beforeAll, expect, it, vi } from 'vitest'
import type { Env } from '../../src/edge/env.ts'
import worker from '../../src/edge/index.ts'
import { call, createTenant, type Tenant } from './helpers.ts'

// A route's timeout_ms bounds the wait for the upstream's answer, not how
// long its stream runs: the upstream here honours the signal it is given,
// as a real connection would.

const TIMEOUT_MS = 100
const encoder = new TextEncoder()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let tenant: Tenant
beforeAll(async () => {
  tenant = await createTenant('upstream-timeout')
  const res = await call('/v1/routes', {
    key: tenant.adminKey,
    body: { name: 'slow', kind: 'openai', upstream_url: 'https://upstream.example/v1', strategy: { timeout_ms: TIMEOUT_MS, retries: 0 } },
  })
  expect(res.status, await res.clone().text()).toBe(201)
})

afterEach(() => {
  vi.restoreAllMocks()
})

async function chat(stream: boolean) {
  const ctx = createExecutionContext()
  const response = await worker.fetch(
    new Request('http://moat.test/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow/gpt', stream, messages: [{ role: 'user', content: 'tell me a long story' }] }),
    }),
    env as unknown as Env,
    ctx,
  )
  return { response, done: () => waitOnExecutionContext(ctx) }
}

it('streams an answer that lasts longer than the timeout to its end', async () => {
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (_input, init) => {
    const signal = init?.signal
    const chunk = (i: number) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt', choices: [{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }] })}\n\n`
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        // Five pieces over about four times the timeout; an abort ends the stream with an error.
        for (let i = 0; i < 5; i++) {
          await sleep(TIMEOUT_MS * 0.8)
          if (signal?.aborted) return controller.error(signal.reason)
          controller.enqueue(encoder.encode(chunk(i)))
        }
        controller.enqueue(encoder.encode('data: [DONE]\n\n'))
        controller.close()
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
  })
  const { response, done } = await chat(true)
  expect(response.status).toBe(200)
  const text = await response.text()
  await done()
  expect(text.match(/"content":"w\d /g)).toHaveLength(5)
  expect(text.trim().endsWith('data: [DONE]')).toBe(true)
})

it('answers 504 when the upstream does not answer within the timeout', async () => {
  vi.spyOn(globalThis, 'fetch').mockImplementation(
    (_input, init) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason))
      }),
  )
  const { response, done } = await chat(false)
  await done()
  expect(response.status).toBe(504)
  expect(((await response.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout')
})
