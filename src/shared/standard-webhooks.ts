import { utf8 } from './encoding.ts'
import { fromBase64Url } from './secret-box.ts'

// Standard Webhooks (standardwebhooks.com): the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>", signed with HMAC-SHA256 under the
// bytes of the secret (base64 after its `whsec_` prefix), and sent as
// `webhook-signature: v1,<base64 signature>`.

export const WEBHOOK_SECRET_PREFIX = 'whsec_'

export function newWebhookSecret(): string {
  let binary = ''
  for (const byte of crypto.getRandomValues(new Uint8Array(24))) binary += String.fromCharCode(byte)
  return `${WEBHOOK_SECRET_PREFIX}${btoa(binary)}`
}

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) throw new Error('a webhook secret starts with whsec_')
  return fromBase64Url(secret.slice(WEBHOOK_SECRET_PREFIX.length).replace(/\+/g, '-').replace(/\//g, '_'))
}

export async function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', secretBytes(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const signature = new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8(`${id}.${timestampSeconds}.${body}`)))
  let binary = ''
  for (const byte of signature) binary += String.fromCharCode(byte)
  return `v1,${btoa(binary)}`
}

export async function webhookHeaders(secret: string, id: string, body: string, now = Date.now()): Promise<Record<string, string>> {
  const timestamp = Math.floor(now / 1000)
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': await signWebhook(secret, id, timestamp, body),
    'content-type': 'application/json',
  }
}
