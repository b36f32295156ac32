import { utf8 } from './encoding.ts'

// Secrets a tenant gives Moat (webhook signing secrets, billing credentials,
// upstream headers) are stored encrypted: AES-256-GCM under a key derived
// with HKDF from the operator's MOAT_SECRETS_KEY. The row's identity is bound
// in as associated data, so a ciphertext copied to another row does not open.

const VERSION = 'v1'

export function toBase64Url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  return Uint8Array.from(binary, (char) => char.charCodeAt(0))
}

export type SecretBox = {
  seal(plaintext: string, context: string): Promise<string>
  open(sealed: string, context: string): Promise<string>
}

export async function createSecretBox(masterKey: string): Promise<SecretBox> {
  if (masterKey.length < 32) throw new Error('MOAT_SECRETS_KEY must be at least 32 characters')
  const material = await crypto.subtle.importKey('raw', utf8(masterKey), 'HKDF', false, ['deriveKey'])
  const key = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: utf8('moat-secret-box'), info: utf8(VERSION) },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  )
  return {
    async seal(plaintext, context) {
      const iv = crypto.getRandomValues(new Uint8Array(12))
      const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8(context) }, key, utf8(plaintext))
      return `${VERSION}.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(sealed))}`
    },
    async open(sealed, context) {
      const [version, iv, data] = sealed.split('.')
      if (version !== VERSION || !iv || !data) throw new Error('not a sealed secret')
      const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64Url(iv), additionalData: utf8(context) }, key, fromBase64Url(data))
      return new TextDecoder().decode(plain)
    },
  }
}
