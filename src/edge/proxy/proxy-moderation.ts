import { OMNI_CATEGORIES } from '../../shared/moderation/categories.ts'
import { compileLists, decide, type ModerationResult } from '../../shared/moderation/decide.ts'
import { resolvePolicy, type ModerationPolicy, type ResolvedPolicy } from '../../shared/moderation/policy.ts'
import type { Env } from '../env.ts'
import { moderationEngine } from '../moderation/engine-instance.ts'
import { readModerationPolicy } from '../moderation/policy-store.ts'

export type ProxyModerator = {
  policy: ResolvedPolicy
  check(text: string): ModerationResult
}

// The route's moderation policy when it has one, else the tenant's.
export async function proxyModerator(env: Env, tenantId: string, routePolicy: ModerationPolicy | undefined): Promise<ProxyModerator> {
  const policy = resolvePolicy(routePolicy ?? (await readModerationPolicy(env, tenantId))?.policy)
  const lists = compileLists(policy)
  const engine = moderationEngine()
  const injectionThreshold = engine.model.thresholds.injection
  return {
    policy,
    check: (text) => decide(text, engine.analyze(text, lists), policy, { categories: OMNI_CATEGORIES, injectionThreshold }),
  }
}

export function blockedCategories(result: ModerationResult): string[] {
  return Object.entries(result.categories)
    .filter(([, flagged]) => flagged)
    .map(([category]) => category)
}
