import { z } from 'zod'
import { OMNI_CATEGORIES, type Category } from './categories.ts'
import { MODERATION_WEIGHTS } from './moderation-weights.ts'

// A tenant's moderation policy (API.md, Policies). What a tenant writes is
// kept as written; reading it fills in every category it does not name with
// the defaults, so a policy can tighten or loosen a category but never make
// one disappear by leaving it out.
export const MODERATION_ACTIONS = ['block', 'flag', 'redact', 'observe'] as const
export type ModerationAction = (typeof MODERATION_ACTIONS)[number]

const listSchema = z.array(z.string().trim().min(1).max(200)).max(1000)

export const categoryRuleSchema = z.strictObject({
  threshold: z.number().min(0).max(1).optional(),
  action: z.enum(MODERATION_ACTIONS).optional(),
})

export const moderationPolicySchema = z.strictObject({
  // Whether the proxy moderates what goes to a model and what comes back.
  input: z.boolean().optional(),
  output: z.boolean().optional(),
  // `observe`: score and report everything, flag nothing.
  mode: z.enum(['enforce', 'observe']).optional(),
  categories: z.partialRecord(z.enum(OMNI_CATEGORIES), categoryRuleSchema).optional(),
  // Terms that flag and block a text wherever they appear (after folding,
  // so "b.a.d" and "ƅad" match "bad").
  blocklist: listSchema.optional(),
  // Terms that never count against a text: they are blanked before scoring.
  allowlist: listSchema.optional(),
})
export type ModerationPolicy = z.infer<typeof moderationPolicySchema>

export type CategoryRule = { threshold: number; action: ModerationAction }
export type ResolvedPolicy = {
  input: boolean
  output: boolean
  mode: 'enforce' | 'observe'
  categories: Record<Category, CategoryRule>
  blocklist: string[]
  allowlist: string[]
}

export const DEFAULT_ACTION: ModerationAction = 'flag'

export function defaultThreshold(category: Category): number {
  return MODERATION_WEIGHTS.thresholds[category]
}

export function resolvePolicy(policy: ModerationPolicy = {}): ResolvedPolicy {
  const categories = Object.fromEntries(
    OMNI_CATEGORIES.map((category) => {
      const rule = policy.categories?.[category]
      return [category, { threshold: rule?.threshold ?? defaultThreshold(category), action: rule?.action ?? DEFAULT_ACTION }]
    }),
  ) as Record<Category, CategoryRule>
  return {
    input: policy.input ?? true,
    output: policy.output ?? true,
    mode: policy.mode ?? 'enforce',
    categories,
    blocklist: policy.blocklist ?? [],
    allowlist: policy.allowlist ?? [],
  }
}
