import { parentPort } from 'node:worker_threads'
import { runKernel, type KernelCall } from './kernels.ts'

// A kernel thread: runs one chunk at a time on arrays in shared memory.

parentPort!.on('message', (message: { id: number; call: KernelCall }) => {
  try {
    parentPort!.postMessage({ id: message.id, result: runKernel(message.call) })
  } catch (error) {
    parentPort!.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) })
  }
})
