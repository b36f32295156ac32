import { describe, expect, it } from 'vitest'
import { OMNI_CATEGORIES, TEXT_CATEGORIES, type Category } from '../../../src/shared/moderation/categories.ts'
import { compileLists, decide } from '../../../src/shared/moderation/decide.ts'
import { createModerationEngine } from '../../../src/shared/moderation/engine.ts'
import { moderationPolicySchema, resolvePolicy, defaultThreshold } from '../../../src/shared/moderation/policy.ts'

const engine = createModerationEngine()
const THREAT = 'I will kill you tonight'

function run(text: string, written = {}, categories: readonly Category[] = OMNI_CATEGORIES) {
  const policy = resolvePolicy(moderationPolicySchema.parse(written))
  return decide(text, engine.analyze(text, compileLists(policy)), policy, { categories, injectionThreshold: 0.5 })
}

describe('policies', () => {
  it('fills every category a policy leaves out with its default', () => {
    const policy = resolvePolicy({ categories: { violence: { threshold: 0.9 } } })
    expect(Object.keys(policy.categories)).toEqual([...OMNI_CATEGORIES])
    expect(policy.categories.violence).toEqual({ threshold: 0.9, action: 'flag' })
    expect(policy.categories.hate).toEqual({ threshold: defaultThreshold('hate'), action: 'flag' })
  })

  it('refuses unknown categories and actions, naming them', () => {
    const unknown = moderationPolicySchema.safeParse({ categories: { violense: { threshold: 0.5 } } })
    expect(unknown.success).toBe(false)
    expect(JSON.stringify(unknown.error?.issues)).toContain('violense')
    expect(moderationPolicySchema.safeParse({ categories: { hate: { action: 'delete' } } }).success).toBe(false)
  })

  it('answers exactly the categories of the model family', () => {
    const omni = run(THREAT)
    expect(Object.keys(omni.categories)).toEqual([...OMNI_CATEGORIES])
    expect(Object.keys(omni.category_scores)).toEqual([...OMNI_CATEGORIES])
    const text = run(THREAT, {}, TEXT_CATEGORIES)
    expect(Object.keys(text.categories)).toEqual([...TEXT_CATEGORIES])
    expect(Object.keys(text.category_applied_input_types)).toHaveLength(11)
  })

  it('takes the strongest action among the categories it flags', () => {
    expect(run(THREAT)).toMatchObject({ flagged: true, moat: { action: 'flag' } })
    expect(run(THREAT, { categories: { violence: { action: 'block' } } }).moat.action).toBe('block')
    const redacted = run(`${THREAT}, joe@example.com`, { categories: { 'harassment/threatening': { action: 'redact' } } })
    expect(redacted.moat.action).toBe('redact')
    expect(redacted.moat.redacted).toBe('I will **** you tonight, ***************')
  })

  it('reports without flagging under observe, per category or for the whole policy', () => {
    const observed = run(THREAT, { mode: 'observe' })
    expect(observed.flagged).toBe(false)
    expect(Object.values(observed.categories).every((v) => !v)).toBe(true)
    expect(observed.moat.observed).toEqual(expect.arrayContaining(['violence', 'harassment/threatening']))
    const one = run(THREAT, { categories: { violence: { action: 'observe' } } })
    expect(one.categories.violence).toBe(false)
    expect(one.categories['harassment/threatening']).toBe(true)
    expect(one.moat.observed).toEqual(['violence'])
  })

  it('blocks on a blocklisted term and lets a raised threshold pass a category', () => {
    expect(run('our codename is Bluebird', { blocklist: ['bluebird'] })).toMatchObject({ flagged: true, moat: { action: 'block' } })
    const lenient = run(THREAT, { categories: Object.fromEntries(OMNI_CATEGORIES.map((c) => [c, { threshold: 1 }])) })
    expect(lenient.flagged).toBe(lenient.moat.observed.length > 0 || Object.values(lenient.category_scores).some((s) => s >= 1))
  })
})
