import { describe, expect, it } from 'vitest'
import tokenizerJson from '../fixtures/guard/tokenizer.json'
import vectors from '../fixtures/guard/green-list-vectors.json'
import { call, createTenant, json, registerModel, type Tenant } from './helpers.ts'

async function ownerWithTokenizer(tenant: Tenant, body: string = JSON.stringify(tokenizerJson), name = 'llm') {
  const modelId = await registerModel(tenant, name, 'safetensors')
  const put = await call(`/v1/models/${modelId}/versions/1/files/tokenizer.json`, { method: 'PUT', key: tenant.adminKey, raw: new TextEncoder().encode(body) })
  expect(put.status).toBe(201)
  return modelId
}

describe('POST /v1/watermark/detect', () => {
  it('finds the watermark in text the owner’s sampler wrote, and not in other text', async () => {
    const tenant = await createTenant()
    const modelId = await ownerWithTokenizer(tenant)
    const marked = vectors.watermarked_text
    const res = await call('/v1/watermark/detect', { key: tenant.adminKey, body: { text: marked.text, tokenizer: { model: modelId, version: '1' }, key: 'owner-key' } })
    expect(res.status).toBe(200)
    const detection = await json(res)
    expect(detection).toMatchObject({ object: 'watermark.detection', verdict: 'watermarked', gamma: 0.25, tokens_scored: marked.tokens_scored, green_tokens: marked.green_tokens, min_tokens: 6 })
    expect(detection.z_score).toBeCloseTo(marked.z_score, 10)

    const plain = await json(await call('/v1/watermark/detect', { key: tenant.adminKey, body: { text: vectors.text.text, tokenizer: { model: modelId, version: '1' }, key: 'owner-key' } }))
    expect(plain).toMatchObject({ verdict: 'not_watermarked', green_tokens: vectors.text.green_tokens })
    const wrongKey = await json(await call('/v1/watermark/detect', { key: tenant.adminKey, body: { text: marked.text, tokenizer: { model: modelId, version: '1' }, key: 'another' } }))
    expect(wrongKey.verdict).toBe('not_watermarked')
  })

  it('answers 4xx for bad input', async () => {
    const tenant = await createTenant()
    const modelId = await ownerWithTokenizer(tenant)
    const detect = (body: unknown) => call('/v1/watermark/detect', { key: tenant.adminKey, body })
    const ok = { text: 'the model', tokenizer: { model: modelId, version: '1' }, key: 'k' }
    expect((await detect({ ...ok, gamma: 1 })).status).toBe(400)
    expect((await detect({ ...ok, text: '' })).status).toBe(400)
    expect((await detect({ ...ok, scheme: 'selfhash' })).status).toBe(400)
    expect((await detect({ ...ok, tokenizer: { model: modelId, version: '2' } })).status).toBe(404)
    expect(await json(await detect(ok))).toMatchObject({ verdict: 'too_short' })
    const noTokenizer = await registerModel(tenant, 'bare', 'safetensors')
    expect((await detect({ ...ok, tokenizer: { model: noTokenizer, version: '1' } })).status).toBe(404)
    const broken = await ownerWithTokenizer(tenant, '{"not": "a tokenizer"}', 'broken')
    const refused = await detect({ ...ok, tokenizer: { model: broken, version: '1' } })
    expect(refused.status).toBe(422)
    expect((await json(refused)).error.code).toBe('invalid_tokenizer')
  })
})
