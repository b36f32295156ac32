import { describe, expect, it } from 'vitest'
import { backoffSeconds } from '../../src/shared/backoff.ts'
import { constantTimeEqual } from '../../src/shared/constant-time.ts'
import { createId, randomString } from '../../src/shared/ids.ts'
import { usageEventId, usageEventSchema } from '../../src/shared/usage-event.ts'

describe('ids', () => {
  it('sort by creation time and never repeat', () => {
    const early = createId('job', 1_000_000)
    const late = createId('job', 2_000_000)
    expect(early < late).toBe(true)
    expect(early).toMatch(/^job_[0-9a-z]{26}$/)
    expect(new Set(Array.from({ length: 1000 }, () => createId('x'))).size).toBe(1000)
  })

  it('draws random strings from the alphabet only', () => {
    expect(randomString(500, 'ab')).toMatch(/^[ab]{500}$/)
  })
})

describe('backoff', () => {
  it('doubles from one second and caps at a minute', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 50].map((attempt) => backoffSeconds(attempt))).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60])
    expect(backoffSeconds(3, { baseSeconds: 2, maxSeconds: 5 })).toBe(5)
  })
})

describe('constantTimeEqual', () => {
  it('compares exactly', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true)
    expect(constantTimeEqual('abc', 'abd')).toBe(false)
    expect(constantTimeEqual('abc', 'abcd')).toBe(false)
    expect(constantTimeEqual('', '')).toBe(true)
  })
})

describe('usage event ids', () => {
  it('are the same for one request and meter, and differ otherwise', async () => {
    const id = await usageEventId('req_1', 'requests')
    expect(id).toMatch(/^ue_[0-9a-f]{32}$/)
    expect(await usageEventId('req_1', 'requests')).toBe(id)
    expect(await usageEventId('req_1', 'artifacts.bytes')).not.toBe(id)
    expect(await usageEventId('req_2', 'requests')).not.toBe(id)
  })

  it('validate events strictly', () => {
    const event = { id: 'ue_' + 'a'.repeat(32), tenant_id: 't', key_id: null, meter: 'requests', value: 1, timestamp: 1, request_id: 'r' }
    expect(usageEventSchema.safeParse(event).success).toBe(true)
    expect(usageEventSchema.safeParse({ ...event, extra: 1 }).success).toBe(false)
    expect(usageEventSchema.safeParse({ ...event, meter: 'Bad Meter' }).success).toBe(false)
  })
})
