import { z } from '@hono/zod-openapi'
import { guardPolicySchema } from '../../shared/guard/guard-policy.ts'
import { maskingPolicySchema } from '../../shared/masking/mask-probabilities.ts'
import { moderationPolicySchema } from '../../shared/moderation/policy.ts'
import { parsePointer } from '../../shared/proxy/json-pointer.ts'
import { logprobPolicySchema } from '../../shared/proxy/logprob-policy.ts'

// What a model owner says about a route: where its model lives, how to pick
// among several targets, and the policy Moat applies around it.

const headerName = z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'a header name')
const headersSchema = z.record(headerName, z.string().max(4000)).refine((headers) => Object.keys(headers).length <= 20, 'at most 20 headers')

export const targetSchema = z.strictObject({
  url: z.string().max(2048),
  headers: headersSchema.optional(),
  weight: z.number().int().min(1).max(1000).default(1),
})

export const strategySchema = z.strictObject({
  // fallback: targets in order, the next one on `on_status` or a timeout;
  // loadbalance: one target by weight, the others as fallbacks.
  mode: z.enum(['fallback', 'loadbalance']).default('fallback'),
  on_status: z.array(z.number().int().min(400).max(599)).default([429, 500, 502, 503, 504]),
  timeout_ms: z.number().int().min(100).max(600_000).default(60_000),
  // Tries per target for 429/5xx before anything was sent to the client.
  retries: z.number().int().min(0).max(5).default(2),
})

export const routePolicySchema = z.strictObject({
  moderation: moderationPolicySchema.optional(),
  masking: maskingPolicySchema.optional(),
  logprobs: logprobPolicySchema.optional(),
  guard: z.record(z.string(), z.unknown()).optional(),
  // How much of a streamed answer is held back and checked before it is sent:
  // characters, or (when set) tokens, counted as the upstream's content deltas.
  stream_window_chars: z.number().int().min(1).max(10_000).default(200),
  stream_window_tokens: z.number().int().min(1).max(2_000).optional(),
})
export type RoutePolicy = z.output<typeof routePolicySchema>

// What a route is saved with: the guard section is also checked against the
// guard's own schema, so a mistake in it is a 400 when the route is written,
// not on every call. It is kept as written (defaults are filled in per call,
// merged with the key's policy). Stored rows are read with routePolicySchema,
// which leaves the section alone: a row that no longer parses (the schema
// moved on) is still refused per call, with the same 400 `invalid_policy`.
const savedRoutePolicySchema = routePolicySchema.superRefine((policy, context) => {
  if (!policy.guard) return
  const checked = guardPolicySchema.safeParse(policy.guard)
  if (checked.success) return
  for (const issue of checked.error.issues) context.addIssue({ code: 'custom', message: `guard policy: ${issue.message}`, path: ['guard', ...issue.path.map(String)] })
})

const pointerSchema = z.string().max(500).refine((pointer) => parsePointer(pointer) !== null, 'a JSON pointer such as /predictions/0')

export const routeBodySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'use 1-64 letters, digits, dots, dashes or underscores'),
  kind: z.enum(['openai', 'json-classifier']),
  upstream_url: z.string().max(2048).optional(),
  headers: headersSchema.optional(),
  targets: z.array(targetSchema).min(1).max(10).optional(),
  strategy: strategySchema.optional(),
  probabilities_path: pointerSchema.optional(),
  policy: savedRoutePolicySchema.optional(),
})
export type RouteBody = z.infer<typeof routeBodySchema>

export const routeUpdateSchema = routeBodySchema.omit({ kind: true }).partial()
