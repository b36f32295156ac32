import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ResumableSha256 } from '../../src/shared/resumable-sha256.ts'

function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = x >>> 24
  }
  return out
}

const reference = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

describe('ResumableSha256', () => {
  it('matches the FIPS 180-4 test vectors', () => {
    const hex = (text: string) => new ResumableSha256().update(new TextEncoder().encode(text)).digestHex()
    expect(hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    expect(hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    )
  })

  it('equals one-shot hashing for every block-boundary length, split anywhere and resumed from saved state', () => {
    for (const length of [1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4097]) {
      const data = bytes(length, length)
      for (const split of [0, 1, Math.floor(length / 2), length - 1, length]) {
        const first = new ResumableSha256().update(data.subarray(0, split))
        const resumed = ResumableSha256.restore(first.saveState()).update(data.subarray(split))
        expect(resumed.digestHex(), `length ${length} split ${split}`).toBe(reference(data))
      }
    }
  })

  it('keeps working after a digest, like a running hash should', () => {
    const data = bytes(300, 3)
    const hash = new ResumableSha256().update(data.subarray(0, 100))
    expect(hash.digestHex()).toBe(reference(data.subarray(0, 100)))
    hash.update(data.subarray(100))
    expect(hash.digestHex()).toBe(reference(data))
    expect(hash.bytesHashed).toBe(300)
  })

  it('hashes many parts across saves like a multipart upload', () => {
    const data = bytes(5 * 1024 * 1024 + 77, 9)
    let state = new ResumableSha256().saveState()
    for (let offset = 0; offset < data.length; offset += 1024 * 1024) {
      state = ResumableSha256.restore(state).update(data.subarray(offset, offset + 1024 * 1024)).saveState()
    }
    expect(ResumableSha256.restore(state).digestHex()).toBe(reference(data))
  })

  it('refuses a malformed or inconsistent state', () => {
    expect(() => ResumableSha256.restore('v1:nonsense')).toThrow(/invalid/)
    const state = new ResumableSha256().update(bytes(10, 1)).saveState()
    expect(() => ResumableSha256.restore(state.replace(':10:', ':11:'))).toThrow(/invalid/)
  })
})
