import { describe, expect, it } from 'vitest'
import { parsePointer, readPointer, writePointer } from '../../src/shared/proxy/json-pointer.ts'
import { hardenChatRequest, logprobPolicySchema, roundLogprobs } from '../../src/shared/proxy/logprob-policy.ts'
import { createSseReader } from '../../src/shared/proxy/sse-reader.ts'

const policy = (input: Record<string, unknown> = {}) => logprobPolicySchema.parse(input)

describe('logprob hardening', () => {
  it('caps top_logprobs and refuses logit_bias as the policy says', () => {
    const body: Record<string, unknown> = { logprobs: true, top_logprobs: 20 }
    expect(hardenChatRequest(body, policy())).toBeNull()
    expect(body.top_logprobs).toBe(5)
    expect(hardenChatRequest({ logit_bias: { '50256': -100 }, logprobs: true }, policy())).toMatchObject({ code: 'logit_bias_not_allowed' })
    expect(hardenChatRequest({ logit_bias: { '50256': -100 } }, policy())).toBeNull()
    expect(hardenChatRequest({ logit_bias: { '1': 1 } }, policy({ allow_logit_bias: 'deny' }))).toMatchObject({ param: 'logit_bias' })
    expect(hardenChatRequest({ logit_bias: { '1': 1, '2': 1, '3': 1 } }, policy({ allow_logit_bias: 2 }))).toMatchObject({ message: expect.stringMatching(/at most 2/) })
    expect(hardenChatRequest({ logprobs: true }, policy({ max_top_logprobs: 0 }))).toMatchObject({ code: 'logprobs_not_allowed' })
  })

  it('rounds every logprob in a completion', () => {
    const completion = { choices: [{ logprobs: { content: [{ token: 'a', logprob: -0.123456, top_logprobs: [{ token: 'b', logprob: -2.987654 }] }] } }] }
    roundLogprobs(completion, 2)
    expect(completion.choices[0]!.logprobs.content[0]).toEqual({ token: 'a', logprob: -0.12, top_logprobs: [{ token: 'b', logprob: -2.99 }] })
  })
})

describe('JSON pointers', () => {
  it('reads and writes by RFC 6901', () => {
    const doc = { 'a/b': { c: [1, [0.2, 0.8]] } }
    const tokens = parsePointer('/a~1b/c/1')!
    expect(readPointer(doc, tokens)).toEqual([0.2, 0.8])
    expect(writePointer(doc, tokens, [0, 1])).toBe(true)
    expect(doc['a/b'].c[1]).toEqual([0, 1])
    expect(parsePointer('no-slash')).toBeNull()
    expect(readPointer(doc, parsePointer('/missing/0')!)).toBeUndefined()
    expect(writePointer(doc, parsePointer('/missing/0')!, 1)).toBe(false)
  })
})

describe('SSE reader', () => {
  it('splits events across chunk boundaries', () => {
    const reader = createSseReader()
    expect(reader.push('data: {"a":1}\n\nda')).toEqual([{ raw: 'data: {"a":1}', data: '{"a":1}' }])
    expect(reader.push('ta: [DONE]\r\n\r\n: comment\n\n')).toEqual([{ raw: 'data: [DONE]', data: '[DONE]' }, { raw: ': comment', data: null }])
    expect(reader.push('data: tail')).toEqual([])
    expect(reader.rest()).toEqual([{ raw: 'data: tail', data: 'tail' }])
  })
})
