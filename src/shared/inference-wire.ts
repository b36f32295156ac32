import { z } from 'zod'
import { artifactRefSchema } from './job-types.ts'

// Hosted inference on the signed channel, edge → runner, outside the job
// queue (the synchronous path). Tensors travel as flat number arrays with
// their dims; float32 is the only element type served today.

export const tensorSchema = z.strictObject({
  name: z.string().min(1).max(200),
  dims: z.array(z.number().int().nonnegative()).min(1).max(8),
  data: z.array(z.number()),
})
export type WireTensor = z.infer<typeof tensorSchema>

// Behavioural probe: inputs generated from a seed (see probeInputs), and the
// outputs the model gave when it was registered.
export const probeSchema = z.strictObject({
  seed: z.number().int().nonnegative(),
  rows: z.number().int().positive().max(64),
  outputs: z.record(z.string(), z.array(z.number())),
})
export type Probe = z.infer<typeof probeSchema>

export const PROBE_TOLERANCE = 1e-4

export const inspectRequestSchema = z.strictObject({
  artifact: artifactRefSchema,
  probe: z.strictObject({ seed: z.number().int().nonnegative(), rows: z.number().int().positive().max(64) }),
})
export type InspectRequest = z.infer<typeof inspectRequestSchema>

export const ioMetadataSchema = z.object({
  name: z.string(),
  type: z.string(),
  shape: z.array(z.union([z.number(), z.string()])),
})
export type IoMetadata = z.infer<typeof ioMetadataSchema>

export const inspectResponseSchema = z.object({
  backend: z.string(),
  inputs: z.array(ioMetadataSchema),
  outputs: z.array(ioMetadataSchema),
  probe: probeSchema,
})
export type InspectResponse = z.infer<typeof inspectResponseSchema>

export const runRequestSchema = z.strictObject({
  artifact: artifactRefSchema,
  probe: probeSchema.nullable(),
  input: tensorSchema,
})
export type RunRequest = z.infer<typeof runRequestSchema>

export const runResponseSchema = z.object({
  backend: z.string(),
  outputs: z.array(tensorSchema),
  compute_ms: z.number(),
  batch_rows: z.number().int(),
})
export type RunResponse = z.infer<typeof runResponseSchema>

// Deterministic probe inputs in [0, 1): a small linear congruential generator
// both sides can run, so only the seed is stored.
export function probeInputs(seed: number, rows: number, width: number): Float32Array {
  const out = new Float32Array(rows * width)
  let state = seed >>> 0
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    out[i] = state / 2 ** 32
  }
  return out
}

// Whether outputs match a probe's recorded ones within tolerance.
export function probeMatches(expected: Record<string, number[]>, actual: Record<string, ArrayLike<number>>, tolerance = PROBE_TOLERANCE): boolean {
  for (const [name, values] of Object.entries(expected)) {
    const got = actual[name]
    if (!got || got.length !== values.length) return false
    for (let i = 0; i < values.length; i++) if (!(Math.abs(values[i]! - got[i]!) <= tolerance)) return false
  }
  return true
}
