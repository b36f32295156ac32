import type { LoadedModel, OutputTensors } from './inference-backend.ts'

// Concurrent requests for one model are gathered into one run: rows queue
// until `maxRows` are waiting or `maxDelayMs` has passed since the first,
// run as one tensor, and the outputs are split back by row. Past
// `maxQueuedRows` waiting rows a request is refused (the caller answers 429).

export type BatcherOptions = { maxRows: number; maxDelayMs: number; maxQueuedRows: number }

export type BatchResult = { outputs: OutputTensors; computeMs: number; batchRows: number }

type Pending = {
  data: Float32Array
  rows: number
  resolve: (result: BatchResult) => void
  reject: (error: unknown) => void
}

type Queue = { inputName: string; innerDims: number[]; pending: Pending[]; rows: number; timer: ReturnType<typeof setTimeout> | null }

export class BatcherFullError extends Error {
  override readonly name = 'BatcherFullError'
}

export type DynamicBatcher = {
  submit(model: LoadedModel, key: string, inputName: string, data: Float32Array, dims: number[]): Promise<BatchResult>
  queuedRows(): number
}

function sliceRows(tensor: { dims: number[]; data: Float32Array }, start: number, rows: number) {
  const rowSize = tensor.dims.slice(1).reduce((product, dim) => product * dim, 1)
  return { dims: [rows, ...tensor.dims.slice(1)], data: tensor.data.slice(start * rowSize, (start + rows) * rowSize) }
}

export function createDynamicBatcher(options: BatcherOptions): DynamicBatcher {
  const queues = new Map<string, Queue>()
  let queued = 0

  const flush = async (model: LoadedModel, key: string) => {
    const queue = queues.get(key)
    if (!queue || queue.pending.length === 0) return
    queues.delete(key)
    if (queue.timer) clearTimeout(queue.timer)
    queued -= queue.rows
    const rowSize = queue.innerDims.reduce((product, dim) => product * dim, 1)
    const data = new Float32Array(queue.rows * rowSize)
    let offset = 0
    for (const item of queue.pending) {
      data.set(item.data, offset * rowSize)
      offset += item.rows
    }
    const started = performance.now()
    try {
      const outputs = await model.run(queue.inputName, data, [queue.rows, ...queue.innerDims])
      const computeMs = performance.now() - started
      let start = 0
      for (const item of queue.pending) {
        const mine: OutputTensors = {}
        for (const [name, tensor] of Object.entries(outputs)) mine[name] = sliceRows(tensor, start, item.rows)
        start += item.rows
        item.resolve({ outputs: mine, computeMs, batchRows: queue.rows })
      }
    } catch (error) {
      for (const item of queue.pending) item.reject(error)
    }
  }

  return {
    submit(model, key, inputName, data, dims) {
      const rows = dims[0] ?? 1
      const innerDims = dims.slice(1)
      if (queued + rows > options.maxQueuedRows) return Promise.reject(new BatcherFullError(`${queued} rows are already waiting`))
      // Requests batch together only when their rows have the same shape.
      const queueKey = `${key}|${inputName}|${innerDims.join('x')}`
      return new Promise<BatchResult>((resolve, reject) => {
        let queue = queues.get(queueKey)
        if (queue && queue.rows + rows > options.maxRows) {
          void flush(model, queueKey)
          queue = undefined
        }
        if (!queue) {
          queue = { inputName, innerDims, pending: [], rows: 0, timer: null }
          queues.set(queueKey, queue)
          queue.timer = setTimeout(() => void flush(model, queueKey), options.maxDelayMs)
        }
        queue.pending.push({ data, rows, resolve, reject })
        queue.rows += rows
        queued += rows
        if (queue.rows >= options.maxRows) void flush(model, queueKey)
      })
    },
    queuedRows: () => queued,
  }
}
