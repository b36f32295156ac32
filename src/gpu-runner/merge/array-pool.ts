// Float32 arrays in shared memory, reused from tensor to tensor. Freed
// SharedArrayBuffers go back to the system only when the garbage collector
// gets to them, which lags far behind a merge allocating hundreds of MB per
// tensor; reusing them keeps the process's peak at what one tensor (and the
// next one's prefetch) actually needs.

export type ArrayPool = {
  take(length: number): Float32Array
  release(arrays: Iterable<Float32Array | null>): void
  // Bytes of every buffer the pool has made, in use or not.
  readonly bytes: number
}

export function createArrayPool(): ArrayPool {
  const free: SharedArrayBuffer[] = []
  let bytes = 0
  return {
    get bytes() {
      return bytes
    },
    take(length) {
      const needed = Math.max(4, length * 4)
      // Best fit, and never a buffer more than twice the size: a small tensor
      // holding a large buffer would make the next large one allocate anew.
      let best = -1
      for (let i = 0; i < free.length; i++) {
        const size = free[i]!.byteLength
        if (size >= needed && size <= needed * 2 && (best < 0 || size < free[best]!.byteLength)) best = i
      }
      const buffer = best >= 0 ? free.splice(best, 1)[0]! : new SharedArrayBuffer(needed)
      if (best < 0) bytes += needed
      return new Float32Array(buffer, 0, length)
    },
    release(arrays) {
      const seen = new Set<SharedArrayBuffer>()
      for (const array of arrays) {
        if (!array || !(array.buffer instanceof SharedArrayBuffer) || seen.has(array.buffer)) continue
        seen.add(array.buffer)
        free.push(array.buffer)
      }
    },
  }
}
