import { toHex } from './encoding.ts'

// SHA-256 (FIPS 180-4) whose running state can be saved and restored. WebCrypto
// only hashes whole messages; a multipart upload arrives as parts in separate
// requests, so the edge keeps this state between parts and never re-reads the
// assembled object to learn its digest.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
])

const INITIAL = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]

const STATE_FORMAT = /^v1:([0-9a-f]{64}):(\d+):((?:[0-9a-f]{2}){0,63})$/

export class ResumableSha256 {
  private readonly h = new Int32Array(INITIAL)
  private readonly w = new Int32Array(64)
  private readonly block = new Uint8Array(64)
  private blockLength = 0
  private totalBytes = 0

  get bytesHashed(): number {
    return this.totalBytes
  }

  update(data: Uint8Array): this {
    let offset = 0
    this.totalBytes += data.length
    if (this.blockLength > 0) {
      const take = Math.min(64 - this.blockLength, data.length)
      this.block.set(data.subarray(0, take), this.blockLength)
      this.blockLength += take
      offset = take
      if (this.blockLength < 64) return this
      this.compress(this.block, 0)
      this.blockLength = 0
    }
    for (; offset + 64 <= data.length; offset += 64) this.compress(data, offset)
    if (offset < data.length) {
      this.block.set(data.subarray(offset), 0)
      this.blockLength = data.length - offset
    }
    return this
  }

  // Serialises the running state: the eight words, the byte count and the
  // bytes of the unfinished block.
  saveState(): string {
    const words = Array.from(this.h, (word) => (word >>> 0).toString(16).padStart(8, '0')).join('')
    return `v1:${words}:${this.totalBytes}:${toHex(this.block.subarray(0, this.blockLength))}`
  }

  static restore(state: string): ResumableSha256 {
    const match = STATE_FORMAT.exec(state)
    if (!match) throw new Error('invalid SHA-256 state')
    const [, words, total, tail] = match as unknown as [string, string, string, string]
    const hash = new ResumableSha256()
    for (let i = 0; i < 8; i++) hash.h[i] = Number.parseInt(words.slice(i * 8, i * 8 + 8), 16) | 0
    hash.totalBytes = Number(total)
    const tailLength = tail.length / 2
    if (hash.totalBytes % 64 !== tailLength) throw new Error('invalid SHA-256 state')
    for (let i = 0; i < tailLength; i++) hash.block[i] = Number.parseInt(tail.slice(i * 2, i * 2 + 2), 16)
    hash.blockLength = tailLength
    return hash
  }

  // Finishes a copy, so the running state stays usable.
  digestHex(): string {
    const copy = ResumableSha256.restore(this.saveState())
    const bitsHigh = Math.floor((copy.totalBytes * 8) / 2 ** 32)
    const bitsLow = (copy.totalBytes * 8) >>> 0
    const padLength = copy.blockLength < 56 ? 56 - copy.blockLength : 120 - copy.blockLength
    const padding = new Uint8Array(padLength + 8)
    padding[0] = 0x80
    const view = new DataView(padding.buffer)
    view.setUint32(padLength, bitsHigh)
    view.setUint32(padLength + 4, bitsLow)
    copy.update(padding)
    return Array.from(copy.h, (word) => (word >>> 0).toString(16).padStart(8, '0')).join('')
  }

  private compress(data: Uint8Array, offset: number): void {
    const w = this.w
    for (let i = 0; i < 16; i++) {
      const j = offset + i * 4
      w[i] = (data[j]! << 24) | (data[j + 1]! << 16) | (data[j + 2]! << 8) | data[j + 3]!
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!
      const b = w[i - 2]!
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3)
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10)
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0
    }
    const state = this.h
    let a = state[0]!
    let b = state[1]!
    let c = state[2]!
    let d = state[3]!
    let e = state[4]!
    let f = state[5]!
    let g = state[6]!
    let h = state[7]!
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
      const ch = (e & f) ^ (~e & g)
      const t1 = (h + s1 + ch + K[i]! + w[i]!) | 0
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
      const maj = (a & b) ^ (a & c) ^ (b & c)
      const t2 = (s0 + maj) | 0
      h = g
      g = f
      f = e
      e = (d + t1) | 0
      d = c
      c = b
      b = a
      a = (t1 + t2) | 0
    }
    state[0] = (state[0]! + a) | 0
    state[1] = (state[1]! + b) | 0
    state[2] = (state[2]! + c) | 0
    state[3] = (state[3]! + d) | 0
    state[4] = (state[4]! + e) | 0
    state[5] = (state[5]! + f) | 0
    state[6] = (state[6]! + g) | 0
    state[7] = (state[7]! + h) | 0
  }
}
