import { createHash, randomUUID } from 'node:crypto'
import { mkdir, open, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ArtifactRef } from '../shared/job-types.ts'
import type { ByteRateLimiter } from './byte-rate-limiter.ts'
import type { EdgeClient } from './edge-client.ts'
import { JobError } from './job-error.ts'
import { errorMessage } from './logger.ts'

// Artifacts on local disk, named by their SHA-256. A file reaches
// `sha256/<hex>` only by a rename after its bytes hashed to <hex>, so a file
// found there is trusted without hashing it again, and a download whose hash
// differs is deleted, never used.

export type FetchOutcome =
  | { status: 'verified'; path: string; sha256: string; size: number; cached: boolean }
  // `sha256` is null when the edge sent more bytes than the artifact has: the
  // download stops there rather than filling the disk.
  | { status: 'mismatch'; sha256: string | null; size: number }
  | { status: 'missing' }

export type FetchOptions = {
  signal?: AbortSignal
  // Bytes of this artifact received so far (cumulative).
  onBytes?: (bytes: number) => void
}

export type ArtifactCache = {
  fetchVerified(ref: ArtifactRef, options?: FetchOptions): Promise<FetchOutcome>
  pathFor(sha256: string): string
}

export type ArtifactCacheOptions = {
  dir: string
  edge: EdgeClient
  limiter: ByteRateLimiter
}

type Download = {
  promise: Promise<FetchOutcome>
  controller: AbortController
  waiters: number
  bytes: number
  listeners: Set<(bytes: number) => void>
}

export function createArtifactCache(options: ArtifactCacheOptions): ArtifactCache {
  const verifiedDir = join(options.dir, 'sha256')
  // Temporary files live beside the verified ones so the final rename stays on one file system.
  const tempDir = join(options.dir, 'tmp')
  const downloads = new Map<string, Download>()
  const pathFor = (sha256: string) => join(verifiedDir, sha256)

  const findCached = async (ref: ArtifactRef): Promise<FetchOutcome | null> => {
    const path = pathFor(ref.sha256)
    const info = await stat(path).catch(() => null)
    // A size that differs can only be a damaged file; fetch it again.
    if (!info?.isFile() || info.size !== ref.size) return null
    return { status: 'verified', path, sha256: ref.sha256, size: info.size, cached: true }
  }

  const download = async (ref: ArtifactRef, state: Download): Promise<FetchOutcome> => {
    const { signal } = state.controller
    const response = await options.edge.openArtifact(ref.artifact_key, signal).catch((error: unknown) => {
      signal.throwIfAborted()
      throw new JobError(`artifact ${ref.artifact_key} could not be fetched: ${errorMessage(error)}`, 'artifact_unavailable', {
        cause: error,
      })
    })
    if (!response) return { status: 'missing' }

    await Promise.all([mkdir(verifiedDir, { recursive: true }), mkdir(tempDir, { recursive: true })])
    const tempPath = join(tempDir, `${ref.sha256}.${randomUUID()}.part`)
    const file = await open(tempPath, 'wx')
    let fileOpen = true
    let stored = false
    try {
      const hash = createHash('sha256')
      for await (const chunk of response.body ?? []) {
        state.bytes += chunk.byteLength
        if (state.bytes > ref.size) return { status: 'mismatch', sha256: null, size: state.bytes }
        hash.update(chunk)
        await file.write(chunk)
        for (const listener of state.listeners) listener(state.bytes)
        await options.limiter.take(chunk.byteLength, signal)
      }
      const actual = hash.digest('hex')
      if (actual !== ref.sha256) return { status: 'mismatch', sha256: actual, size: state.bytes }
      // Flushed before the rename: after a crash, a name in sha256/ must still mean verified bytes.
      await file.sync()
      fileOpen = false
      await file.close()
      const path = pathFor(ref.sha256)
      await rename(tempPath, path)
      stored = true
      return { status: 'verified', path, sha256: actual, size: state.bytes, cached: false }
    } catch (error) {
      signal.throwIfAborted()
      throw new JobError(`artifact ${ref.artifact_key} download failed: ${errorMessage(error)}`, 'artifact_unavailable', {
        cause: error,
      })
    } finally {
      if (fileOpen) await file.close()
      if (!stored) await rm(tempPath, { force: true })
    }
  }

  const start = (ref: ArtifactRef, key: string): Download => {
    const state: Download = {
      promise: Promise.resolve({ status: 'missing' }),
      controller: new AbortController(),
      waiters: 0,
      bytes: 0,
      listeners: new Set(),
    }
    state.promise = download(ref, state).finally(() => {
      if (downloads.get(key) === state) downloads.delete(key)
    })
    downloads.set(key, state)
    return state
  }

  // Waits for a shared download on behalf of one caller. The download is
  // aborted only when every caller waiting for it has given up.
  const joinDownload = (key: string, state: Download, fetchOptions: FetchOptions): Promise<FetchOutcome> => {
    const { signal, onBytes } = fetchOptions
    state.waiters++
    if (onBytes) {
      state.listeners.add(onBytes)
      if (state.bytes > 0) onBytes(state.bytes)
    }
    return new Promise((resolve, reject) => {
      let left = false
      const leave = () => {
        if (left) return false
        left = true
        state.waiters--
        if (onBytes) state.listeners.delete(onBytes)
        signal?.removeEventListener('abort', onAbort)
        return true
      }
      const onAbort = () => {
        if (!leave()) return
        if (state.waiters === 0) {
          if (downloads.get(key) === state) downloads.delete(key)
          state.controller.abort(signal?.reason)
        }
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      state.promise.then(
        (outcome) => leave() && resolve(outcome),
        (error: unknown) => leave() && reject(error),
      )
    })
  }

  return {
    pathFor,
    async fetchVerified(ref, fetchOptions = {}) {
      fetchOptions.signal?.throwIfAborted()
      const cached = await findCached(ref)
      if (cached) return cached
      fetchOptions.signal?.throwIfAborted()
      // Shared per hash and key, not per hash alone: verifying one stored
      // object must not borrow the outcome of reading another.
      const key = `${ref.sha256}\n${ref.artifact_key}`
      return joinDownload(key, downloads.get(key) ?? start(ref, key), fetchOptions)
    },
  }
}
