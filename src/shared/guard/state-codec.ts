// Detector state goes into the Durable Object's SQLite storage as one text
// value per row: JSON, with typed arrays as base64 of their bytes (a
// Float32Array of 3,840 values is 20 KB this way and 40 KB or more as a JSON
// number list). Decoding restores the same array types.

const TYPED = { f32: Float32Array, u32: Uint32Array, u8: Uint8Array } as const
type TypedName = keyof typeof TYPED

function base64(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary)
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

function typedName(value: unknown): TypedName | null {
  if (value instanceof Float32Array) return 'f32'
  if (value instanceof Uint32Array) return 'u32'
  if (value instanceof Uint8Array) return 'u8'
  return null
}

export function encodeState(state: unknown): string {
  return JSON.stringify(state, (_key, value: unknown) => {
    const name = typedName(value)
    if (!name) return value
    const view = value as Float32Array | Uint32Array | Uint8Array
    return { $typed: name, data: base64(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)) }
  })
}

export function decodeState<T>(text: string): T {
  return JSON.parse(text, (_key, value: unknown) => {
    if (value && typeof value === 'object' && '$typed' in value && 'data' in value) {
      const { $typed, data } = value as { $typed: TypedName; data: string }
      const bytes = fromBase64(data)
      const Type = TYPED[$typed]
      return new Type(bytes.buffer, 0, bytes.byteLength / Type.BYTES_PER_ELEMENT)
    }
    return value
  }) as T
}
