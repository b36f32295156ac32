import { describe, expect, it } from 'vitest'
import { sha256Hex } from '../../src/shared/encoding.ts'
import {
  canonicalRequest,
  CONTENT_SHA256_HEADER,
  EMPTY_BODY_SHA256,
  NONCE_HEADER,
  SIGNATURE_HEADER,
  signRunnerRequest,
  TIMESTAMP_HEADER,
  verifyRunnerSignature,
} from '../../src/shared/runner-signature.ts'

const secret = 'shared-secret'
const now = Date.UTC(2026, 10, 28, 12, 0, 0)

async function verify(headers: Record<string, string>, overrides: Partial<{ method: string; path: string; secret: string; now: number }> = {}) {
  return verifyRunnerSignature({
    secret: overrides.secret ?? secret,
    method: overrides.method ?? 'POST',
    path: overrides.path ?? '/jobs',
    headers: new Headers(headers),
    now: overrides.now ?? now,
  })
}

describe('runner signatures', () => {
  it('accepts what it signed, and reports the body hash to check', async () => {
    const headers = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', body: '{"a":1}', now })
    const check = await verify(headers)
    expect(check.ok).toBe(true)
    if (check.ok) expect(check.bodySha256).toBe(await sha256Hex('{"a":1}'))
  })

  it('signs an empty body with the empty hash', async () => {
    const headers = await signRunnerRequest({ secret, method: 'GET', path: '/x', now })
    expect(headers[CONTENT_SHA256_HEADER]).toBe(EMPTY_BODY_SHA256)
    expect(EMPTY_BODY_SHA256).toBe(await sha256Hex(''))
  })

  it('refuses another secret, method, path, body hash or timestamp', async () => {
    const headers = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', body: 'x', now })
    expect((await verify(headers, { secret: 'other' })).ok).toBe(false)
    expect((await verify(headers, { method: 'PUT' })).ok).toBe(false)
    expect((await verify(headers, { path: '/jobs?x=1' })).ok).toBe(false)
    expect((await verify({ ...headers, [CONTENT_SHA256_HEADER]: 'a'.repeat(64) })).ok).toBe(false)
    expect((await verify({ ...headers, [TIMESTAMP_HEADER]: String(Number(headers[TIMESTAMP_HEADER]) + 1) })).ok).toBe(false)
  })

  it('refuses requests outside the ±300 s window', async () => {
    const headers = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', now })
    expect((await verify(headers, { now: now + 300_000 })).ok).toBe(true)
    expect(await verify(headers, { now: now + 301_000 })).toEqual({ ok: false, reason: 'timestamp outside the allowed window' })
    expect((await verify(headers, { now: now - 301_000 })).ok).toBe(false)
  })

  it('gives two identical requests in one second different signatures', async () => {
    const first = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', body: 'same', now })
    const second = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', body: 'same', now })
    expect(first[SIGNATURE_HEADER]).not.toBe(second[SIGNATURE_HEADER])
    expect((await verify(second)).ok).toBe(true)
  })

  it('refuses a changed nonce', async () => {
    const headers = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', body: 'x', now })
    expect((await verify({ ...headers, [NONCE_HEADER]: 'ab'.repeat(16) })).ok).toBe(false)
    expect((await verify({ ...headers, [NONCE_HEADER]: 'not hex' })).ok).toBe(false)
  })

  it('refuses missing or malformed headers', async () => {
    expect(await verify({})).toEqual({ ok: false, reason: 'missing signature headers' })
    const headers = await signRunnerRequest({ secret, method: 'POST', path: '/jobs', now })
    expect((await verify({ ...headers, [TIMESTAMP_HEADER]: '12abc' })).ok).toBe(false)
  })

  it('uses the documented canonical form', () => {
    expect(canonicalRequest({ method: 'post', path: '/a?b=1', bodySha256: 'h', timestamp: 5, nonce: 'n' })).toBe('5\nn\nPOST\n/a?b=1\nh')
  })
})
