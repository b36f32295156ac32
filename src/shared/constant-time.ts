// Compares two strings in time that depends only on their lengths, so a
// caller cannot learn a secret one matching character at a time. UTF-16 code
// units are compared directly (no encoding, no allocation: this runs on
// every authenticated request).
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length
  const length = Math.max(a.length, b.length)
  for (let i = 0; i < length; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0)
  return diff === 0
}
