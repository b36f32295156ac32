// Crockford base32: ids sort by creation time, so list cursors (`after`) can
// compare ids directly.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

function encodeTime(ms: number): string {
  let out = ''
  let rest = ms
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[rest % 32] + out
    rest = Math.floor(rest / 32)
  }
  return out
}

export function randomString(length: number, alphabet = ALPHABET): string {
  // Rejection sampling keeps every character equally likely.
  const limit = 256 - (256 % alphabet.length)
  let out = ''
  while (out.length < length) {
    for (const byte of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (byte < limit && out.length < length) out += alphabet[byte % alphabet.length]
    }
  }
  return out
}

export function createId(prefix: string, now = Date.now()): string {
  return `${prefix}_${encodeTime(now)}${randomString(16)}`
}
