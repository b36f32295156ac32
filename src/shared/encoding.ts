const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)
  let out = ''
  for (const byte of view) out += HEX[byte]
  return out
}

export function utf8(text: string): Uint8Array<ArrayBuffer> {
  // Some runtimes' typings widen this to ArrayBufferLike; it is always a plain ArrayBuffer.
  return new TextEncoder().encode(text) as Uint8Array<ArrayBuffer>
}

export async function sha256Hex(data: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const bytes = typeof data === 'string' ? utf8(data) : data
  return toHex(await crypto.subtle.digest('SHA-256', bytes))
}

export const SHA256_HEX = /^[0-9a-f]{64}$/
