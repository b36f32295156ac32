// JSON Pointer (RFC 6901): locates the probabilities in a classifier's
// response, e.g. `/predictions/0/scores`.
export function parsePointer(pointer: string): string[] | null {
  if (pointer === '') return []
  if (!pointer.startsWith('/')) return null
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'))
}

export function readPointer(document: unknown, tokens: string[]): unknown {
  let node = document
  for (const token of tokens) {
    if (Array.isArray(node)) node = /^(0|[1-9]\d*)$/.test(token) ? node[Number(token)] : undefined
    else if (node && typeof node === 'object') node = Object.hasOwn(node, token) ? (node as Record<string, unknown>)[token] : undefined
    else return undefined
  }
  return node
}

export function writePointer(document: unknown, tokens: string[], value: unknown): boolean {
  if (tokens.length === 0) return false
  const parent = readPointer(document, tokens.slice(0, -1))
  const last = tokens.at(-1)!
  if (Array.isArray(parent) && /^(0|[1-9]\d*)$/.test(last) && Number(last) < parent.length) {
    parent[Number(last)] = value
    return true
  }
  if (parent && typeof parent === 'object' && !Array.isArray(parent) && Object.hasOwn(parent, last)) {
    ;(parent as Record<string, unknown>)[last] = value
    return true
  }
  return false
}
