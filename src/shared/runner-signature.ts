import { constantTimeEqual } from './constant-time.ts'
import { sha256Hex, toHex, utf8 } from './encoding.ts'

// The channel between the edge and its runners. Each request carries a
// timestamp, a random nonce, the SHA-256 of its body and an HMAC-SHA256 over
//   "<timestamp>\n<nonce>\n<METHOD>\n<path with query>\n<body sha256>"
// keyed with MOAT_RUNNER_SECRET. The nonce makes every request's signature
// unique, so a replay cache of signatures refuses only true replays (two
// identical heartbeats in one second are two requests). The body hash travels as a header so a
// streamed body (an artifact part) can be signed before it is sent and checked
// while it is read.

export const SIGNATURE_HEADER = 'x-moat-signature'
export const TIMESTAMP_HEADER = 'x-moat-timestamp'
export const CONTENT_SHA256_HEADER = 'x-moat-content-sha256'
export const NONCE_HEADER = 'x-moat-nonce'
export const SIGNATURE_WINDOW_SECONDS = 300
export const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

export type SignatureInput = {
  secret: string
  method: string
  path: string
  bodySha256: string
  timestamp: number
  nonce: string
}

// Importing the key is most of an HMAC's cost for small messages; a process
// signs with one or two secrets, so the imported keys are kept.
const importedKeys = new Map<string, ReturnType<typeof crypto.subtle.importKey>>()

async function hmacHex(secret: string, message: string): Promise<string> {
  let key = importedKeys.get(secret)
  if (!key) {
    key = crypto.subtle.importKey('raw', utf8(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    if (importedKeys.size >= 8) importedKeys.clear()
    importedKeys.set(secret, key)
  }
  return toHex(await crypto.subtle.sign('HMAC', await key, utf8(message)))
}

export function canonicalRequest(input: Omit<SignatureInput, 'secret'>): string {
  return `${input.timestamp}\n${input.nonce}\n${input.method.toUpperCase()}\n${input.path}\n${input.bodySha256}`
}

export async function computeSignature(input: SignatureInput): Promise<string> {
  return `v1=${await hmacHex(input.secret, canonicalRequest(input))}`
}

export type SignedHeadersOptions = {
  secret: string
  method: string
  path: string
  body?: string | Uint8Array<ArrayBuffer>
  bodySha256?: string
  now?: number
  nonce?: string
}

// Headers for one signed request. Pass `body` for small bodies, or the
// precomputed `bodySha256` of a streamed one.
export async function signRunnerRequest(options: SignedHeadersOptions): Promise<Record<string, string>> {
  const bodySha256 =
    options.bodySha256 ?? (options.body === undefined ? EMPTY_BODY_SHA256 : await sha256Hex(options.body))
  const timestamp = Math.floor((options.now ?? Date.now()) / 1000)
  const nonce = options.nonce ?? toHex(crypto.getRandomValues(new Uint8Array(16)))
  const signature = await computeSignature({
    secret: options.secret,
    method: options.method,
    path: options.path,
    bodySha256,
    timestamp,
    nonce,
  })
  return {
    [SIGNATURE_HEADER]: signature,
    [TIMESTAMP_HEADER]: String(timestamp),
    [NONCE_HEADER]: nonce,
    [CONTENT_SHA256_HEADER]: bodySha256,
  }
}

export type SignatureCheck =
  | { ok: true; signature: string; timestamp: number; bodySha256: string }
  | { ok: false; reason: string }

export type VerifyOptions = {
  secret: string
  method: string
  path: string
  headers: { get(name: string): string | null }
  now?: number
  windowSeconds?: number
}

// Checks the signature and the time window. The caller still has to check
// that the body matches `bodySha256` and that `signature` was not seen before.
export async function verifyRunnerSignature(options: VerifyOptions): Promise<SignatureCheck> {
  const signature = options.headers.get(SIGNATURE_HEADER)
  const timestampText = options.headers.get(TIMESTAMP_HEADER)
  const bodySha256 = options.headers.get(CONTENT_SHA256_HEADER)
  const nonce = options.headers.get(NONCE_HEADER)
  if (!signature || !timestampText || !bodySha256 || !nonce) return { ok: false, reason: 'missing signature headers' }
  if (!/^\d{1,12}$/.test(timestampText)) return { ok: false, reason: 'malformed timestamp' }
  if (!/^[0-9a-f]{16,64}$/.test(nonce)) return { ok: false, reason: 'malformed nonce' }
  if (!/^[0-9a-f]{64}$/.test(bodySha256)) return { ok: false, reason: 'malformed content hash' }
  const timestamp = Number(timestampText)
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000)
  const window = options.windowSeconds ?? SIGNATURE_WINDOW_SECONDS
  if (Math.abs(nowSeconds - timestamp) > window) return { ok: false, reason: 'timestamp outside the allowed window' }
  const expected = await computeSignature({
    secret: options.secret,
    method: options.method,
    path: options.path,
    bodySha256,
    timestamp,
    nonce,
  })
  if (!constantTimeEqual(expected, signature)) return { ok: false, reason: 'signature mismatch' }
  return { ok: true, signature, timestamp, bodySha256 }
}
