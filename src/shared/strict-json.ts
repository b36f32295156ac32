// A JSON parser for untrusted headers. JSON.parse keeps the last of two equal
// keys without a word, so a file could show one reader a tensor and another
// reader a different one; this parser refuses duplicate keys instead, and
// builds objects without a prototype so no key (`__proto__` included) can reach
// Object.prototype.

export type StrictJson = null | boolean | number | string | StrictJson[] | StrictJsonObject
export type StrictJsonObject = { [key: string]: StrictJson }

export class StrictJsonError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StrictJsonError'
  }
}

const MAX_DEPTH = 64
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y

export function parseStrictJson(text: string): StrictJson {
  let at = 0
  const fail = (what: string): never => {
    throw new StrictJsonError(`${what} at character ${at}`)
  }
  const skipSpace = () => {
    while (at < text.length) {
      const c = text.charCodeAt(at)
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return
      at++
    }
  }
  const parseString = (): string => {
    // The opening quote is at `at`; JSON.parse decodes the escapes of the exact slice.
    const start = at
    at++
    while (at < text.length) {
      const c = text.charCodeAt(at)
      if (c === 0x22) {
        at++
        return JSON.parse(text.slice(start, at)) as string
      }
      if (c === 0x5c) at += 2
      else if (c < 0x20) fail('control character in string')
      else at++
    }
    return fail('unterminated string')
  }
  const parseValue = (depth: number): StrictJson => {
    if (depth > MAX_DEPTH) fail('nesting too deep')
    skipSpace()
    const c = text[at]
    if (c === '{') {
      at++
      const object: StrictJsonObject = Object.create(null) as StrictJsonObject
      skipSpace()
      if (text[at] === '}') {
        at++
        return object
      }
      for (;;) {
        skipSpace()
        if (text[at] !== '"') fail('expected a key')
        const key = parseString()
        if (Object.hasOwn(object, key)) fail(`duplicate key ${JSON.stringify(key)}`)
        skipSpace()
        if (text[at] !== ':') fail('expected ":"')
        at++
        object[key] = parseValue(depth + 1)
        skipSpace()
        if (text[at] === ',') {
          at++
          continue
        }
        if (text[at] === '}') {
          at++
          return object
        }
        fail('expected "," or "}"')
      }
    }
    if (c === '[') {
      at++
      const array: StrictJson[] = []
      skipSpace()
      if (text[at] === ']') {
        at++
        return array
      }
      for (;;) {
        array.push(parseValue(depth + 1))
        skipSpace()
        if (text[at] === ',') {
          at++
          continue
        }
        if (text[at] === ']') {
          at++
          return array
        }
        fail('expected "," or "]"')
      }
    }
    if (c === '"') return parseString()
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, at)) {
        at += word.length
        return value
      }
    }
    NUMBER.lastIndex = at
    const match = NUMBER.exec(text)
    if (!match) return fail('unexpected token')
    at += match[0].length
    return Number(match[0])
  }
  const value = parseValue(0)
  skipSpace()
  if (at !== text.length) fail('unexpected data after the value')
  return value
}

export function isJsonObject(value: StrictJson | undefined): value is StrictJsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
