import { canonicalInput, chooseWatermark, watermarkProbabilities } from '../../shared/guard/dawn.ts'
import { guardPolicySchema } from '../../shared/guard/guard-policy.ts'
import { toHex, utf8 } from '../../shared/encoding.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import { clientId } from './client-id.ts'
import type { GuardTicket } from './guard-hook.ts'

// DAWN on the way out of a classifier: before masking, each answer is
// checked against HMAC(model secret, input); a chosen one gets another label
// (probabilities swapped to agree) and is recorded for this client, its
// input kept in R2; a control is recorded and answered truthfully. The model secret derives from MOAT_SECRETS_KEY, so it
// never needs storing and no tenant can compute another's marks.

export type ClassifierAnswer = { input: ArrayLike<number>; probabilities: number[] }

async function modelKey(env: Pick<Env, 'MOAT_SECRETS_KEY'>, tenantId: string, model: string): Promise<CryptoKey> {
  if (!env.MOAT_SECRETS_KEY || env.MOAT_SECRETS_KEY.length < 32) {
    throw new ApiError(503, 'Watermarking needs MOAT_SECRETS_KEY', { code: 'secrets_unavailable' })
  }
  const material = await crypto.subtle.importKey('raw', utf8(env.MOAT_SECRETS_KEY), 'HKDF', false, ['deriveKey'])
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: utf8('moat-dawn'), info: utf8(`${tenantId}\n${model}`) },
    material,
    { name: 'HMAC', hash: 'SHA-256', length: 256 },
    false,
    ['sign'],
  )
}

export function watermarkInputKey(tenantId: string, model: string, id: string): string {
  return `watermarks/${tenantId}/${model}/${id}.json`
}

// Answers the same probabilities, except for the marked ones; records each
// mark once per client and input.
export async function watermarkAnswers(env: Env, ticket: GuardTicket, answers: readonly ClassifierAnswer[]): Promise<number[][]> {
  const share = guardPolicySchema.parse(ticket.policy).watermark_share
  if (share === 0 || answers.length === 0) return answers.map((answer) => answer.probabilities)
  const key = await modelKey(env, ticket.client.tenantId, ticket.model)
  const client = clientId(ticket.client)
  const out: number[][] = []
  for (const answer of answers) {
    const classes = answer.probabilities.length
    const trueLabel = answer.probabilities.indexOf(Math.max(...answer.probabilities))
    const choice = await chooseWatermark(key, answer.input, trueLabel, classes, share)
    if (!choice.selected) {
      out.push(answer.probabilities)
      continue
    }
    out.push(choice.kind === 'mark' ? watermarkProbabilities(answer.probabilities, choice.label) : answer.probabilities)
    const bytes = canonicalInput(answer.input)
    const digest = toHex(await crypto.subtle.digest('SHA-256', utf8(`${ticket.model}\n${client}\n${toHex(bytes)}`)))
    const id = `wmq_${digest.slice(0, 32)}`
    const inputKey = watermarkInputKey(ticket.client.tenantId, ticket.model, id)
    const inserted = await env.DB.prepare(
      `INSERT INTO watermark_queries (id, tenant_id, model_id, client_id, true_label, watermark_label, kind, classes, input_key, created_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING RETURNING id`,
    )
      .bind(id, ticket.client.tenantId, ticket.model, client, trueLabel, choice.label, choice.kind, classes, inputKey, Date.now())
      .first()
    if (inserted) await env.ARTIFACTS.put(inputKey, JSON.stringify(Array.from(answer.input)), { httpMetadata: { contentType: 'application/json' } })
  }
  return out
}
