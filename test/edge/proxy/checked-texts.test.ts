import { env } from 'cloudflare:workers'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { createCheckedTexts } from '../../../src/edge/proxy/checked-texts.ts'
import type { Env } from '../../../src/edge/env.ts'
import { moderationEngine } from '../../../src/edge/moderation/engine-instance.ts'
import { resolvePolicy } from '../../../src/shared/moderation/policy.ts'
import type { ModerationResult } from '../../../src/shared/moderation/decide.ts'
import { call, chatStarted, chatWith, completionResponse, createKey, createTenant, json, type Tenant } from '../helpers.ts'

const result = (action: ModerationResult['moat']['action']) => ({ moat: { action } }) as ModerationResult

describe('checked texts', () => {
  it('answers a text checked before under an equal policy, and checks it again under another', () => {
    const texts = createCheckedTexts()
    const lenient = texts.scope(resolvePolicy())
    // Resolved again from scratch: equal, so the same scope.
    expect(texts.scope(resolvePolicy({}))).toBe(lenient)
    const strict = texts.scope(resolvePolicy({ blocklist: ['zephyr'] }))
    expect(strict).not.toBe(lenient)
    const check = vi.fn(() => result('allow'))
    expect(texts.check(lenient, 'the zephyr blows', check)).toEqual(result('allow'))
    expect(texts.check(lenient, 'the zephyr blows', check)).toEqual(result('allow'))
    expect(check).toHaveBeenCalledTimes(1)
    expect(texts.check(strict, 'the zephyr blows', () => result('block'))).toEqual(result('block'))
    expect(texts.check(lenient, 'the zephyr blows', () => result('block'))).toEqual(result('allow'))
  })

  it('keeps nothing asked not to be remembered, nor a text over the length limit, and forgets the least recent past its size', () => {
    const texts = createCheckedTexts({ maxSize: 36, entryOverhead: 10, maxTextLength: 20 })
    const scope = texts.scope(resolvePolicy())
    const check = vi.fn(() => result('allow'))
    texts.check(scope, 'partial', check, false)
    texts.check(scope, 'partial', check)
    expect(check).toHaveBeenCalledTimes(2)
    const long = 'x'.repeat(21)
    texts.check(scope, long, check)
    texts.check(scope, long, check)
    expect(check).toHaveBeenCalledTimes(4)
    // "partial" takes 9 + 10 of the 36, a one-letter text 3 + 10: "b" pushes "partial" out, "c" then "a".
    for (const text of ['a', 'b', 'c']) texts.check(scope, text, check)
    expect(texts.size).toBe(2)
    check.mockClear()
    texts.check(scope, 'c', check)
    texts.check(scope, 'b', check)
    expect(check).not.toHaveBeenCalled()
    texts.check(scope, 'a', check)
    expect(check).toHaveBeenCalledTimes(1)
  })
})

describe('a conversation through the proxy', () => {
  let tenant: Tenant
  let key: string
  let routeId: string
  beforeAll(async () => {
    tenant = await createTenant('conversation')
    key = await createKey(tenant)
    const made = await call('/v1/routes', { key: tenant.adminKey, body: { name: 'talk', kind: 'openai', upstream_url: 'https://upstream.example/v1' } })
    expect(made.status).toBe(201)
    routeId = (await json(made)).id
  })
  beforeEach(() => {
    vi.spyOn(globalThis, 'fetch').mockImplementation(async () => completionResponse())
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('checks each message once per policy, and every one again when the policy changes', async () => {
    const engine = await moderationEngine()
    const analyzed = vi.spyOn(engine, 'analyze')
    const bindings = env as unknown as Env
    const turn = (messages: { role: string; content: string }[]) => chatWith(bindings, key, '', { model: 'talk/gpt', messages })
    const history = [
      { role: 'system', content: 'You are a helpful assistant for sailors.' },
      { role: 'user', content: 'Which way does the zephyr blow?' },
    ]
    const first = await turn(history)
    expect(first.status).toBe(200)
    const answer = (await json(first)).choices[0].message.content as string
    // The system prompt, the question, and the answer on its way out.
    expect(analyzed.mock.calls.map(([text]) => text)).toEqual([history[0]!.content, history[1]!.content, answer])

    analyzed.mockClear()
    const next = [...history, { role: 'assistant', content: answer }, { role: 'user', content: 'And at night?' }]
    expect((await turn(next)).status).toBe(200)
    // Only the new question; its answer is the same text as before.
    expect(analyzed.mock.calls.map(([text]) => text)).toEqual(['And at night?'])

    const changed = await call(`/v1/routes/${routeId}`, { method: 'PATCH', key: tenant.adminKey, body: { policy: { moderation: { blocklist: ['zephyr'] } } } })
    expect(changed.status).toBe(200)
    // The edge keeps a route, and its compiled moderator, for 2 s.
    await new Promise((resolve) => setTimeout(resolve, 2100))
    analyzed.mockClear()
    const refused = await turn(next)
    expect(refused.status).toBe(400)
    expect((await json(refused)).error.code).toBe('content_filter')
    expect(analyzed.mock.calls.map(([text]) => text)).toEqual([history[0]!.content, history[1]!.content])
  }, 20_000)

  it('remembers a streamed answer whole, not the partial texts checked on the way', async () => {
    const made = await call('/v1/routes', { key: tenant.adminKey, body: { name: 'stream', kind: 'openai', upstream_url: 'https://upstream.example/v1', policy: { stream_window_chars: 6 } } })
    expect(made.status).toBe(201)
    const encoder = new TextEncoder()
    const words = Array.from({ length: 6 }, (_, i) => `tide${i} `)
    vi.spyOn(globalThis, 'fetch').mockImplementation(async () => {
      const chunk = (content: string) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`
      return new Response(words.map(chunk).join('') + 'data: [DONE]\n\n', { headers: { 'content-type': 'text/event-stream' } })
    })
    const engine = await moderationEngine()
    const analyzed = vi.spyOn(engine, 'analyze')
    const bindings = env as unknown as Env
    const system = { role: 'system', content: 'You answer questions about the sea.' }
    const question = { role: 'user', content: 'Tell me about the tides of the northern sea.' }
    const stream = async (messages: { role: string; content: string }[]) => {
      const { response, done } = await chatStarted(bindings, key, '', { model: 'stream/gpt', messages, stream: true })
      expect(response.status).toBe(200)
      expect(await response.text()).toContain('data: [DONE]')
      await done()
    }
    await stream([system, question])
    const whole = words.join('')
    const checked = analyzed.mock.calls.map(([text]) => text)
    expect(checked.slice(0, 2)).toEqual([system.content, question.content])
    // Every window checked what had come so far; the last check is the whole answer.
    expect(checked.length).toBeGreaterThan(3)
    expect(checked.at(-1)).toBe(whole)

    analyzed.mockClear()
    const partial = checked[2]!
    const next = [system, question, { role: 'assistant', content: whole }, { role: 'user', content: partial }]
    await stream(next)
    const again = analyzed.mock.calls.map(([text]) => text)
    // The partial text was never remembered; the question and the whole answer were.
    expect(again[0]).toBe(partial)
    expect(again).not.toContain(question.content)
    expect(again).not.toContain(whole)
  })

  it('remembers nothing of a request with one message, most often a one-shot call', async () => {
    const engine = await moderationEngine()
    const analyzed = vi.spyOn(engine, 'analyze')
    const bindings = env as unknown as Env
    const question = { role: 'user', content: 'What is the tallest lighthouse in Portugal?' }
    const first = await chatWith(bindings, key, '', { model: 'talk/gpt', messages: [question] })
    const answer = (await json(first)).choices[0].message.content as string
    analyzed.mockClear()
    const follow = { role: 'user', content: 'And in Spain?' }
    expect((await chatWith(bindings, key, '', { model: 'talk/gpt', messages: [question, { role: 'assistant', content: answer }, follow] })).status).toBe(200)
    // The question and the answer are checked again; the answer going out is then known.
    expect(analyzed.mock.calls.map(([text]) => text)).toEqual([question.content, answer, follow.content])
  })
})
