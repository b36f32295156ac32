import { keyedSeed, maskingPolicySchema, maskProbabilities, type MaskedAnswer, type MaskingMode, type MaskingPolicy } from '../../shared/masking/mask-probabilities.ts'
import { utf8 } from '../../shared/encoding.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'

// How much a mode hides: a client the guard degrades never gets an answer
// that reveals more than the model's own policy allows.
const STRICTNESS: Record<MaskingMode, number> = { none: 0, round: 1, top_k: 2, noise: 3, reverse_sigmoid: 4, label_only: 5 }

export function effectiveMasking(modelPolicy: unknown, degradedTo: MaskingMode | null): MaskingPolicy {
  const own = maskingPolicySchema.parse((modelPolicy as { masking?: unknown } | null)?.masking ?? {})
  if (!degradedTo || STRICTNESS[degradedTo] <= STRICTNESS[own.mode]) return own
  return { ...own, mode: degradedTo }
}

let cachedKey: { secret: string; key: ReturnType<typeof crypto.subtle.importKey> } | undefined

// The masking secret derives from MOAT_SECRETS_KEY, so it is never stored.
function maskingKey(env: Pick<Env, 'MOAT_SECRETS_KEY'>) {
  const secret = env.MOAT_SECRETS_KEY
  if (!secret || secret.length < 32) throw new ApiError(503, 'Noise masking needs MOAT_SECRETS_KEY', { code: 'secrets_unavailable' })
  if (cachedKey?.secret !== secret) {
    const key = crypto.subtle
      .importKey('raw', utf8(secret), 'HKDF', false, ['deriveKey'])
      .then((material) =>
        crypto.subtle.deriveKey(
          { name: 'HKDF', hash: 'SHA-256', salt: utf8('moat-masking'), info: utf8('v1') },
          material,
          { name: 'HMAC', hash: 'SHA-256', length: 256 },
          false,
          ['sign'],
        ),
      )
    cachedKey = { secret, key }
  }
  return cachedKey.key
}

// Masks each row; the noise modes are seeded by HMAC(secret, client, input).
export async function maskRows(env: Env, client: string, rows: number[][], inputs: number[][], policy: MaskingPolicy): Promise<MaskedAnswer[]> {
  const seeded = policy.mode === 'noise'
  const key = seeded ? await maskingKey(env) : null
  return Promise.all(
    rows.map(async (probabilities, row) => maskProbabilities(probabilities, policy, key ? await keyedSeed(key, client, inputs[row] ?? []) : 0)),
  )
}
