import type { IoMetadata } from './inference-wire.ts'

// What a model's inputs look like, and whether a request fits them.

const ONNX_DTYPES: Record<string, string> = { float32: 'float32', float: 'float32', FP32: 'float32' }

// Compares what was declared at registration with what the runtime found in
// the file; null when they agree. A declared -1 (or a symbolic dimension in
// the file) matches any size.
export function declaredInputMismatch(declared: { shape: number[]; dtype: string } | null | undefined, inputs: IoMetadata[]): string | null {
  if (!declared) return null
  const input = inputs[0]
  if (!input) return 'the model has no inputs'
  if (inputs.length !== 1) return `the model has ${inputs.length} inputs; Moat serves models with one input`
  if ((ONNX_DTYPES[declared.dtype] ?? declared.dtype) !== input.type) return `declared dtype ${declared.dtype}, the model's input '${input.name}' is ${input.type}`
  const fits =
    declared.shape.length === input.shape.length &&
    declared.shape.every((dim, i) => {
      const actual = input.shape[i]
      return dim === -1 || typeof actual !== 'number' || actual === dim
    })
  if (!fits) return `declared input shape [${declared.shape.join(', ')}], the model's input '${input.name}' is [${input.shape.join(', ')}]`
  return null
}

// The dims of one row: everything after the batch dimension; a symbolic
// inner dimension must come from the declaration.
export function rowDims(input: IoMetadata, declared?: { shape: number[] } | null): number[] | null {
  const dims = input.shape.slice(1).map((dim, i) => (typeof dim === 'number' && dim > 0 ? dim : (declared?.shape[i + 1] ?? -1)))
  return dims.every((dim) => dim > 0) ? dims : null
}

export type InstanceCheck = { ok: true; data: number[]; rows: number } | { ok: false; status: 400 | 413; message: string; param: string }

// Flattens `instances` (one row each, nested to the row's dims) after
// checking every row's shape and that every value is a finite number.
export function flattenInstances(instances: unknown, dims: number[], maxRows: number, allowNonFinite = false): InstanceCheck {
  if (!Array.isArray(instances) || instances.length === 0) return { ok: false, status: 400, message: 'instances must be a non-empty array of rows', param: 'instances' }
  if (instances.length > maxRows) return { ok: false, status: 413, message: `at most ${maxRows} rows per request, got ${instances.length}`, param: 'instances' }
  const width = dims.reduce((product, dim) => product * dim, 1)
  const data: number[] = []
  for (const [row, instance] of instances.entries()) {
    const flat = Array.isArray(instance) ? (instance as unknown[]).flat(dims.length - 1) : null
    if (!flat || flat.length !== width) {
      return { ok: false, status: 400, message: `instances[${row}] must hold ${width} numbers (shape [${dims.join(', ')}])`, param: `instances.${row}` }
    }
    for (const [column, value] of flat.entries()) {
      if (typeof value !== 'number' || (!allowNonFinite && !Number.isFinite(value))) {
        return { ok: false, status: 400, message: `instances[${row}][${column}] must be a finite number`, param: `instances.${row}.${column}` }
      }
      data.push(value)
    }
  }
  return { ok: true, data, rows: instances.length }
}
