import { z } from 'zod'

// Logprob hardening for LLM routes. The 2024 logit-extraction attacks on
// production LLMs (Carlini et al., Finlayson et al.) needed top-k logprobs,
// precise values and logit_bias together; a policy caps, rounds and refuses
// them.
export const logprobPolicySchema = z.strictObject({
  max_top_logprobs: z.number().int().min(0).max(20).default(5),
  // Decimals kept on every logprob returned; null keeps them as they are.
  round_decimals: z.number().int().min(0).max(8).nullable().default(2),
  // `deny`: no logit_bias at all; a number: at most that many entries;
  // `deny_with_logprobs`: logit_bias, but never together with logprobs.
  allow_logit_bias: z.union([z.literal('deny'), z.literal('deny_with_logprobs'), z.number().int().min(1).max(300)]).default('deny_with_logprobs'),
})
export type LogprobPolicy = z.output<typeof logprobPolicySchema>

export type PolicyViolation = { message: string; param: string; code: string }

// Checks a chat completion request against the policy, and caps
// `top_logprobs` in place. Returns the violation to answer with 400, if any.
export function hardenChatRequest(body: Record<string, unknown>, policy: LogprobPolicy): PolicyViolation | null {
  const bias = body.logit_bias
  const wantsLogprobs = body.logprobs === true || (typeof body.top_logprobs === 'number' && body.top_logprobs > 0)
  if (bias !== undefined && bias !== null) {
    if (typeof bias !== 'object' || Array.isArray(bias)) return { message: 'logit_bias must be an object of token id → bias', param: 'logit_bias', code: 'invalid_value' }
    const entries = Object.keys(bias).length
    if (policy.allow_logit_bias === 'deny' && entries > 0) {
      return { message: 'This route does not accept logit_bias', param: 'logit_bias', code: 'logit_bias_not_allowed' }
    }
    if (policy.allow_logit_bias === 'deny_with_logprobs' && entries > 0 && wantsLogprobs) {
      return { message: 'This route does not accept logit_bias together with logprobs', param: 'logit_bias', code: 'logit_bias_not_allowed' }
    }
    if (typeof policy.allow_logit_bias === 'number' && entries > policy.allow_logit_bias) {
      return { message: `This route accepts at most ${policy.allow_logit_bias} logit_bias entries`, param: 'logit_bias', code: 'logit_bias_not_allowed' }
    }
  }
  if (typeof body.top_logprobs === 'number' && body.top_logprobs > policy.max_top_logprobs) {
    if (policy.max_top_logprobs === 0) return { message: 'This route does not return logprobs', param: 'top_logprobs', code: 'logprobs_not_allowed' }
    body.top_logprobs = policy.max_top_logprobs
  }
  if (body.logprobs === true && policy.max_top_logprobs === 0) {
    return { message: 'This route does not return logprobs', param: 'logprobs', code: 'logprobs_not_allowed' }
  }
  return null
}

function roundTo(value: unknown, factor: number): unknown {
  return typeof value === 'number' ? Math.round(value * factor) / factor : value
}

// Rounds every logprob in a chat completion (or a streamed chunk) in place:
// `choices[].logprobs.content[]` and their `top_logprobs`.
export function roundLogprobs(completion: unknown, decimals: number | null): void {
  if (decimals === null || typeof completion !== 'object' || completion === null) return
  const factor = 10 ** decimals
  const choices = (completion as { choices?: unknown }).choices
  if (!Array.isArray(choices)) return
  for (const choice of choices) {
    const content = (choice as { logprobs?: { content?: unknown } } | null)?.logprobs?.content
    if (!Array.isArray(content)) continue
    for (const token of content as { logprob?: unknown; top_logprobs?: { logprob?: unknown }[] }[]) {
      token.logprob = roundTo(token.logprob, factor)
      for (const alternative of token.top_logprobs ?? []) alternative.logprob = roundTo(alternative.logprob, factor)
    }
  }
}
