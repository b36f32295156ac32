import { z } from 'zod'
import { DEFAULT_WATERMARK_SHARE } from './dawn.ts'
import { MASKING_MODES, type MaskingMode } from '../masking/mask-probabilities.ts'

// The guard's part of a policy (API.md: `guard:{...thresholds, actions}` and
// `limits:{...}`), validated with zod so a bad policy is a 400 naming the
// field. Every field has a default, so `{}` is the recommended policy.

export const GUARD_ACTIONS = ['observe', 'degrade', 'throttle', 'block'] as const
export type GuardAction = (typeof GUARD_ACTIONS)[number]

// The modes a degraded client's answers are masked with (src/shared/masking).
export { MASKING_MODES, type MaskingMode }

const positiveInt = z.number().int().positive()

export const guardLimitsSchema = z
  .object({
    rpm: positiveInt.optional(),
    tpm: positiveInt.optional(),
    daily_requests: positiveInt.optional(),
    daily_tokens: positiveInt.optional(),
    concurrency: positiveInt.optional(),
    budget_units: positiveInt.optional(),
  })
  .strict()
export type GuardLimits = z.infer<typeof guardLimitsSchema>

const risk = z.number().min(0).max(1)

export const guardPolicySchema = z
  .object({
    enabled: z.boolean().default(true),
    // What happens to a request when the guard itself fails: `closed` refuses
    // it (503), `open` lets it through unguarded. Closed by default, because
    // a block rule that fails open protects nothing.
    fail_mode: z.enum(['open', 'closed']).default('closed'),
    // When a proxied call to a model owner's upstream starts. `overlap`: at
    // once, while the guard decides, whenever the guard's last answer on this
    // edge for the client and model was a plain allow; the answer waits for
    // the guard's and is thrown away if it refuses (the upstream did the work
    // once; the client never sees it and nothing is metered). `before`: only
    // once the guard has admitted it.
    admission: z.enum(['overlap', 'before']).default('overlap'),
    limits: guardLimitsSchema.default({}),
    thresholds: z
      .object({
        prada_delta: z.number().min(0).max(1).default(0.92),
        low_confidence_tau: z.number().gt(0).lt(1).default(0.6),
        low_confidence_baseline: z.number().gt(0).lt(1).default(0.05),
        near_duplicate_matches: z.number().int().min(1).max(128).default(8),
        logit_bias_distinct_tokens: z.number().int().min(1).max(1024).default(100),
        template_share: z.number().gt(0).max(1).default(0.8),
        volume_z: z.number().positive().default(6),
        coverage_entropy: z.number().min(0).max(1).default(0.3),
      })
      .strict()
      .default({
        prada_delta: 0.92,
        low_confidence_tau: 0.6,
        low_confidence_baseline: 0.05,
        near_duplicate_matches: 8,
        logit_bias_distinct_tokens: 100,
        template_share: 0.8,
        volume_z: 6,
        coverage_entropy: 0.3,
      }),
    // The risk score at which each action starts; the ladder escalates and
    // only an admin reset (or `cooldown_seconds` without new risk) lowers it.
    actions: z
      .object({ degrade: risk.default(0.4), throttle: risk.default(0.6), block: risk.default(0.85) })
      .strict()
      .default({ degrade: 0.4, throttle: 0.6, block: 0.85 }),
    degrade_masking: z.enum(MASKING_MODES).default('label_only'),
    // A throttled client's rpm and tpm are its limits times this factor.
    throttle_factor: z.number().gt(0).lt(1).default(0.1),
    cooldown_seconds: z.number().int().min(60).default(86_400),
    // DAWN: the share of classifier answers whose label is deliberately
    // changed and recorded, to prove later that a model was trained on them
    // (0 turns it off).
    watermark_share: z.number().min(0).max(0.1).default(DEFAULT_WATERMARK_SHARE),
  })
  .strict()

export type GuardPolicyInput = z.input<typeof guardPolicySchema>
export type GuardPolicy = z.output<typeof guardPolicySchema>

export function resolveGuardPolicy(input: GuardPolicyInput = {}): GuardPolicy {
  return guardPolicySchema.parse(input)
}

export function actionForRisk(policy: GuardPolicy, riskScore: number): GuardAction {
  if (riskScore >= policy.actions.block) return 'block'
  if (riskScore >= policy.actions.throttle) return 'throttle'
  if (riskScore >= policy.actions.degrade) return 'degrade'
  return 'observe'
}

export function actionRank(action: GuardAction): number {
  return GUARD_ACTIONS.indexOf(action)
}

// The most specific policy wins field by field: `specific` (the key's own)
// over `general` (the model's or route's); nested sections merge too.
export function mergeGuardPolicies(general: GuardPolicyInput = {}, specific: GuardPolicyInput = {}): GuardPolicyInput {
  return {
    ...general,
    ...specific,
    limits: { ...general.limits, ...specific.limits },
    thresholds: { ...general.thresholds, ...specific.thresholds } as GuardPolicyInput['thresholds'],
    actions: { ...general.actions, ...specific.actions } as GuardPolicyInput['actions'],
  }
}
