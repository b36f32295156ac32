import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { runKernel, type KernelCall, type KernelResult } from './kernels.ts'

// Runs kernel chunks on `threads` worker threads, or inline on this thread
// when threads is 1. Arrays must live in SharedArrayBuffers for the workers to
// see them; results come back in the order of the calls.

export type KernelRunner = {
  // Where the element-wise ops run: merge-tensor.ts picks the path that suits each.
  device: 'cpu' | 'webgpu'
  threads: number
  run(calls: KernelCall[]): Promise<KernelResult[]>
  close(): Promise<void>
}

export type KernelRunnerOptions = { threads?: number }

type Pending = { resolve(result: KernelResult): void; reject(error: Error): void }

export function defaultThreads(): number {
  return Math.max(1, availableParallelism())
}

export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(Math.max(1, length) * 4), 0, length)
}

export function createKernelRunner(options: KernelRunnerOptions = {}): KernelRunner {
  const threads = Math.max(1, Math.floor(options.threads ?? defaultThreads()))
  if (threads === 1) {
    return { device: 'cpu', threads, run: async (calls) => calls.map(runKernel), close: async () => {} }
  }

  const workers = Array.from({ length: threads }, () => new Worker(new URL('./cpu-worker.ts', import.meta.url)))
  const idle = [...workers]
  const queue: { call: KernelCall; pending: Pending }[] = []
  const inFlight = new Map<number, Pending>()
  const busy = new Map<Worker, number>()
  let nextId = 0
  let failure: Error | null = null

  const pump = () => {
    while (idle.length > 0 && queue.length > 0) {
      const worker = idle.pop()!
      const { call, pending } = queue.shift()!
      const id = nextId++
      inFlight.set(id, pending)
      busy.set(worker, id)
      worker.postMessage({ id, call })
    }
  }

  for (const worker of workers) {
    worker.on('message', (message: { id: number; result?: KernelResult; error?: string }) => {
      const pending = inFlight.get(message.id)
      inFlight.delete(message.id)
      busy.delete(worker)
      idle.push(worker)
      if (message.error !== undefined) pending?.reject(new Error(message.error))
      else pending?.resolve(message.result ?? null)
      pump()
    })
    // A worker that dies takes its chunk with it: fail everything rather than hang.
    worker.on('error', (error) => {
      failure = error
      for (const pending of inFlight.values()) pending.reject(error)
      inFlight.clear()
      for (const { pending } of queue.splice(0)) pending.reject(error)
    })
  }

  return {
    device: 'cpu',
    threads,
    run(calls) {
      if (failure) return Promise.reject(failure)
      const results = calls.map(
        (call) =>
          new Promise<KernelResult>((resolve, reject) => {
            queue.push({ call, pending: { resolve, reject } })
          }),
      )
      pump()
      return Promise.all(results)
    },
    async close() {
      await Promise.all(workers.map((worker) => worker.terminate()))
    },
  }
}
