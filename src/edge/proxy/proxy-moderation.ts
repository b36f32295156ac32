import { createId } from '../../shared/ids.ts'
import { OMNI_CATEGORIES } from '../../shared/moderation/categories.ts'
import { compileLists, decide, decisiveThresholds, type ModerationResult } from '../../shared/moderation/decide.ts'
import { resolvePolicy, type ModerationPolicy, type ResolvedPolicy } from '../../shared/moderation/policy.ts'
import type { Env } from '../env.ts'
import { moderationEngine } from '../moderation/engine-instance.ts'
import { createCheckedTexts } from './checked-texts.ts'
import { readModerationPolicy } from '../moderation/policy-store.ts'

export type ProxyModerator = {
  policy: ResolvedPolicy
  // `remember: false` for a text that will not come again (a stream's
  // partial answer); see checked-texts.ts.
  check(text: string, options?: { remember?: boolean }): ModerationResult
}

const checkedTexts = createCheckedTexts()

// A tenant's policy changes rarely and compiling its lists costs more than
// checking a text, so each isolate keeps the compiled moderator a few seconds.
const MODERATOR_TTL_MS = 2000
const moderators = new Map<string, { at: number; moderator: Promise<ProxyModerator> }>()

// The route's moderation policy when it has one, else the tenant's.
export function proxyModerator(env: Env, tenantId: string, routePolicy: ModerationPolicy | undefined): Promise<ProxyModerator> {
  const key = `${tenantId}\n${routePolicy ? JSON.stringify(routePolicy) : ''}`
  const now = Date.now()
  const hit = moderators.get(key)
  if (hit && now - hit.at < MODERATOR_TTL_MS) return hit.moderator
  const moderator = buildModerator(env, tenantId, routePolicy)
  if (moderators.size >= 500) moderators.clear()
  moderators.set(key, { at: now, moderator })
  moderator.catch(() => moderators.delete(key))
  return moderator
}

async function buildModerator(env: Env, tenantId: string, routePolicy: ModerationPolicy | undefined): Promise<ProxyModerator> {
  const policy = resolvePolicy(routePolicy ?? (await readModerationPolicy(env, tenantId))?.policy)
  // A route that moderates neither way never loads the engine.
  if (!policy.input && !policy.output) {
    return { policy, check: () => { throw new Error('moderation is off for this route') } }
  }
  const lists = compileLists(policy)
  const engine = await moderationEngine()
  const injectionThreshold = engine.model.thresholds.injection
  // The proxy acts on the decision and records only the scores that reached
  // a threshold: the language is identified when it can change either.
  const decisiveAt = decisiveThresholds(policy, injectionThreshold)
  const scope = checkedTexts.scope(policy)
  const decideNow = (text: string) => decide(text, engine.analyze(text, { ...lists, language: { decisiveAt } }), policy, { categories: OMNI_CATEGORIES, injectionThreshold })
  return {
    policy,
    check: (text, options) => checkedTexts.check(scope, text, () => decideNow(text), options?.remember),
  }
}

export function blockedCategories(result: ModerationResult): string[] {
  return Object.entries(result.categories)
    .filter(([, flagged]) => flagged)
    .map(([category]) => category)
}

// Keeps what moderation flagged, observed or acted on (observe mode included),
// off the response path: categories, scores and action, never the text.
export function recordModeration(
  c: import('hono').Context<import('../env.ts').AppEnv>,
  input: { source: string; direction: 'input' | 'output'; result: ModerationResult },
): boolean {
  const { result } = input
  const categories = [...new Set([...blockedCategories(result), ...result.moat.observed])]
  if (!result.flagged && result.moat.action === 'allow' && categories.length === 0) return false
  const auth = c.get('auth')
  const scores = Object.fromEntries(categories.map((category) => [category, result.category_scores[category] ?? 0]))
  c.executionCtx.waitUntil(
    c.env.DB.prepare(
      `INSERT INTO moderation_events (id, tenant_id, key_id, source, direction, action, categories, scores, request_id, created_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`,
    )
      .bind(createId('modev'), auth.tenantId, auth.keyId, input.source, input.direction, result.moat.action, JSON.stringify(categories), JSON.stringify(scores), c.get('requestId'), Date.now())
      .run()
      .catch(() => undefined),
  )
  return true
}
