import { createSecretBox, type SecretBox } from '../shared/secret-box.ts'
import type { Env } from './env.ts'
import { ApiError } from './errors.ts'

let cached: { key: string; box: Promise<SecretBox> } | undefined

// The secret box for this isolate, derived once per MOAT_SECRETS_KEY.
export function secretBox(env: Pick<Env, 'MOAT_SECRETS_KEY'>): Promise<SecretBox> {
  const key = env.MOAT_SECRETS_KEY
  if (!key || key.length < 32) {
    throw new ApiError(503, 'MOAT_SECRETS_KEY (32 characters or more) is not configured', { code: 'secrets_disabled' })
  }
  if (cached?.key !== key) cached = { key, box: createSecretBox(key) }
  return cached.box
}
