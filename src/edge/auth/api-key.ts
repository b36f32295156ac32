import { randomString } from '../../shared/ids.ts'
import { sha256Hex } from '../../shared/encoding.ts'

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const API_KEY_PATTERN = /^moat_sk_[0-9A-Za-z]{40}$/

export type NewApiKey = { key: string; hash: string; prefix: string }

// A key is shown once; only its SHA-256 and a short prefix (to recognise it in
// lists) are stored.
export async function mintApiKey(): Promise<NewApiKey> {
  const key = `moat_sk_${randomString(40, BASE62)}`
  return { key, hash: await sha256Hex(key), prefix: key.slice(0, 12) }
}
