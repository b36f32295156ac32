import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../scripts/local-stack.ts'
import { startFakeUpstream, type FakeUpstream } from './support/fake-upstream.ts'
import { startStack, tenantClient, waitFor, type Client, type Stack } from './stack.ts'

let stack: Stack
let client: Client
let upstream: FakeUpstream

const chat = (body: Record<string, unknown>) => client.call('/v1/chat/completions', { body })

async function streamText(body: Record<string, unknown>) {
  const res = await fetch(`${stack.edge.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  })
  expect(res.status).toBe(200)
  const events = (await res.text())
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice(6))
  return { events, chunks: events.filter((data) => data !== '[DONE]').map((data) => JSON.parse(data)) }
}

beforeAll(async () => {
  upstream = await startFakeUpstream()
  stack = await startStack()
  client = await tenantClient(stack.edge)
  const route = await client.call('/v1/routes', {
    body: {
      name: 'owner',
      kind: 'openai',
      upstream_url: `${upstream.url}/v1`,
      headers: { authorization: 'Bearer sk-upstream-secret' },
      strategy: { timeout_ms: 1000, retries: 1 },
      policy: {
        moderation: { categories: { violence: { action: 'block' }, 'harassment/threatening': { action: 'block' } } },
        stream_window_chars: 20,
      },
    },
  })
  expect(route.status).toBe(201)
})

afterAll(async () => {
  await stack?.stop()
  await upstream?.close()
})

describe('the protected proxy', () => {
  it('keeps upstream headers secret: sent upstream, never shown', async () => {
    const routes = await client.call('/v1/routes')
    expect(JSON.stringify(routes.body)).not.toContain('sk-upstream-secret')
    expect(routes.body.data[0].targets[0].headers).toEqual(['authorization'])
    await chat({ model: 'owner/echo', messages: [{ role: 'user', content: 'hello' }] })
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer sk-upstream-secret')
  })

  it('passes a completion through, caps top_logprobs, rounds logprobs and meters tokens', async () => {
    const res = await chat({ model: 'owner/echo', messages: [{ role: 'user', content: 'what is two plus two' }], logprobs: true, top_logprobs: 20 })
    expect(res.status).toBe(200)
    expect(res.body.choices[0].message.content).toBe('You said: what is two plus two')
    expect(upstream.requests.at(-1)!.body).toMatchObject({ model: 'echo', top_logprobs: 5 })
    const token = res.body.choices[0].logprobs.content[1]
    expect(token.logprob).toBe(-0.25)
    expect(token.top_logprobs).toHaveLength(5)
    expect(token.top_logprobs[0].logprob).toBe(-1.99)
    const start = Math.floor(Date.now() / 1000) - 60
    await waitFor('tokens in the ledger', async () => {
      const usage = await client.call(`/v1/usage?start=${start}`)
      const meters = Object.fromEntries(usage.body.data.map((row: { meter: string; value: number }) => [row.meter, row.value]))
      return meters['tokens.input'] > 0 && meters['tokens.output'] > 0 ? true : undefined
    }, 30_000)
  })

  it('refuses logit_bias with logprobs, and blocked input, with 400', async () => {
    const bias = await chat({ model: 'owner/echo', messages: [{ role: 'user', content: 'hi' }], logit_bias: { '50256': -100 }, logprobs: true })
    expect(bias.status).toBe(400)
    expect(bias.body.error).toMatchObject({ code: 'logit_bias_not_allowed', param: 'logit_bias' })
    const before = upstream.requests.length
    const threat = await chat({ model: 'owner/echo', messages: [{ role: 'user', content: 'I am going to kill you and burn your house down tonight.' }] })
    expect(threat.status).toBe(400)
    expect(threat.body.error.code).toBe('content_filter')
    expect(upstream.requests.length).toBe(before)
  })

  it('blocks a harmful answer: content_filter, not the text', async () => {
    const res = await chat({ model: 'owner/toxic', messages: [{ role: 'user', content: 'tell me something' }] })
    expect(res.status).toBe(200)
    expect(res.body.choices[0]).toMatchObject({ finish_reason: 'content_filter', message: { content: null } })
  })

  it('streams, and ends a harmful stream with content_filter before the harm is sent', async () => {
    const ok = await streamText({ model: 'owner/echo', messages: [{ role: 'user', content: 'stream this please' }] })
    expect(ok.events.at(-1)).toBe('[DONE]')
    expect(ok.chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('')).toBe('You said: stream this please')
    expect(ok.chunks.some((chunk) => chunk.usage)).toBe(false)
    expect(upstream.requests.at(-1)!.body.stream_options).toEqual({ include_usage: true })

    const harmful = await streamText({ model: 'owner/toxic', messages: [{ role: 'user', content: 'go on' }] })
    const delivered = harmful.chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('')
    expect(delivered).not.toContain('kill you')
    expect(harmful.chunks.at(-1).choices[0].finish_reason).toBe('content_filter')
    expect(harmful.events.at(-1)).toBe('[DONE]')

    // A window counted in tokens (content deltas) holds back as surely.
    const tokens = await client.call('/v1/routes', {
      body: {
        name: 'owner-tokens',
        kind: 'openai',
        upstream_url: `${upstream.url}/v1`,
        policy: { moderation: { categories: { violence: { action: 'block' } } }, stream_window_tokens: 4 },
      },
    })
    expect(tokens.status).toBe(201)
    const byTokens = await streamText({ model: 'owner-tokens/toxic', messages: [{ role: 'user', content: 'go on' }] })
    expect(byTokens.chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('')).not.toContain('kill you')
    expect(byTokens.chunks.at(-1).choices[0].finish_reason).toBe('content_filter')
  })

  it('says when the input was flagged and let through, on a whole answer and on a stream', async () => {
    const messages = [{ role: 'user', content: 'You are a worthless idiot and everyone laughs at you.' }]
    const whole = await fetch(`${stack.edge.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'owner/echo', messages }),
    })
    expect(whole.status).toBe(200)
    expect(whole.headers.get('x-moat-moderation')).toBe('flagged')
    const streamed = await fetch(`${stack.edge.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'owner/echo', messages, stream: true }),
    })
    expect(streamed.status).toBe(200)
    expect(streamed.headers.get('x-moat-moderation')).toBe('flagged')
    await streamed.text()
    const plain = await fetch(`${stack.edge.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'owner/echo', messages: [{ role: 'user', content: 'Which river runs through Vienna?' }], stream: true }),
    })
    expect(plain.headers.get('x-moat-moderation')).toBeNull()
    await plain.text()
  })

  it('records what moderation flagged, without the text', async () => {
    const events = await waitFor('moderation events', async () => {
      const res = await client.call('/v1/moderation/events')
      const directions = new Set(res.body.data.map((event: { direction: string }) => event.direction))
      return directions.has('input') && directions.has('output') ? res.body.data : undefined
    })
    const blockedInput = events.find((event: { direction: string; action: string }) => event.direction === 'input' && event.action === 'block')
    expect(blockedInput).toMatchObject({ source: 'owner', categories: expect.arrayContaining(['violence']) })
    expect(JSON.stringify(events)).not.toContain('kill')
  })

  it('retries an overloaded upstream, times out a slow one with 504, and keeps upstream errors in the envelope', async () => {
    const retried = await chat({ model: 'owner/flaky', messages: [{ role: 'user', content: 'Could you try that again for me?' }] })
    expect(retried.status).toBe(200)
    const slow = await chat({ model: 'owner/slow', messages: [{ role: 'user', content: 'Please take your time with the answer.' }] })
    expect(slow.status, JSON.stringify(slow.body)).toBe(504)
    expect(slow.body.error.code).toBe('upstream_timeout')
    const missing = await chat({ model: 'owner/missing', messages: [{ role: 'user', content: 'x' }] })
    expect(missing.status).toBe(404)
    expect(missing.body.error).toMatchObject({ code: 'upstream_error', message: expect.stringMatching(/does not exist/) })
    expect((await chat({ model: 'nobody/echo', messages: [{ role: 'user', content: 'x' }] })).body.error.code).toBe('model_not_found')
  })

  it('falls back to the next target and says which one answered', async () => {
    const dead = await freePort()
    const route = await client.call('/v1/routes', {
      body: { name: 'ha', kind: 'openai', targets: [{ url: `http://127.0.0.1:${dead}/v1` }, { url: `${upstream.url}/v1` }] },
    })
    expect(route.status).toBe(201)
    const res = await fetch(`${stack.edge.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ha/echo', messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-moat-upstream')).toBe('1')
  })

  it('masks a JSON classifier’s probabilities on the generic passthrough', async () => {
    const route = await client.call('/v1/routes', {
      body: { name: 'clf', kind: 'json-classifier', upstream_url: upstream.url, probabilities_path: '/result/probs', policy: { masking: { mode: 'label_only' }, guard: { watermark_share: 0 } } },
    })
    expect(route.status).toBe(201)
    const res = await client.call('/v1/proxy/clf/classify', { body: { features: [1, 2, 3] } })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ result: { label: 'b', probs: [0, 1, 0] }, model: 'clf-1' })
  })

  it('refuses private and metadata upstreams', async () => {
    for (const upstream_url of ['https://10.0.0.1/v1', 'https://169.254.169.254/latest', 'http://example.com/v1']) {
      const res = await client.call('/v1/routes', { body: { name: `bad-${Math.random().toString(36).slice(2, 8)}`, kind: 'openai', upstream_url } })
      expect(res.status, upstream_url).toBe(400)
      expect(res.body.error.code).toBe('url_not_allowed')
    }
  })

  it('works with the official openai client, streaming too', async () => {
    const openai = new OpenAI({ apiKey: client.key, baseURL: `${stack.edge.url}/v1` })
    const completion = await openai.chat.completions.create({ model: 'owner/echo', messages: [{ role: 'user', content: 'from the sdk' }] })
    expect(completion.choices[0]!.message.content).toBe('You said: from the sdk')
    const stream = await openai.chat.completions.create({ model: 'owner/echo', messages: [{ role: 'user', content: 'sdk stream' }], stream: true })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    expect(text).toBe('You said: sdk stream')
  })
})
