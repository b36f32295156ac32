import { z } from 'zod'
import { SHA256_HEX } from './encoding.ts'

// Every job type Moat knows, with the parameters the edge sends a runner and
// the result the runner sends back. Later job types (merge, batch_inference)
// add their entries here; the edge and the runner both validate against them.

export const JOB_TYPES = ['verify_artifact', 'merge', 'batch_inference'] as const
export type JobType = (typeof JOB_TYPES)[number]
export const jobTypeSchema = z.enum(JOB_TYPES)

export const artifactRefSchema = z.strictObject({
  name: z.string().min(1),
  artifact_key: z.string().min(1),
  sha256: z.string().regex(SHA256_HEX),
  size: z.number().int().nonnegative(),
})
export type ArtifactRef = z.infer<typeof artifactRefSchema>

export const verifyArtifactParamsSchema = z.strictObject({
  model_id: z.string(),
  version: z.string(),
  files: z.array(artifactRefSchema).min(1),
})
export type VerifyArtifactParams = z.infer<typeof verifyArtifactParamsSchema>

export const fileVerdictSchema = z.enum(['verified', 'mismatch', 'missing'])
export type FileVerdict = z.infer<typeof fileVerdictSchema>

export const verifyArtifactResultSchema = z.strictObject({
  verdict: fileVerdictSchema,
  files: z.array(
    z.strictObject({
      name: z.string(),
      expected_sha256: z.string(),
      actual_sha256: z.string().nullable(),
      size: z.number().int().nonnegative(),
      verdict: fileVerdictSchema,
    }),
  ),
})
export type VerifyArtifactResult = z.infer<typeof verifyArtifactResultSchema>

// A merge: the mergekit config as given (validated again by the runner), each
// model reference it uses resolved to a registered version's files, and the
// version the output becomes.
export const mergeParamsSchema = z.strictObject({
  config: z.record(z.string(), z.unknown()),
  models: z.record(
    z.string(),
    z.strictObject({ model_id: z.string(), version: z.string(), files: z.array(artifactRefSchema).min(1) }),
  ),
  output: z.strictObject({ model_id: z.string(), version: z.string() }),
  seed: z.number().int().min(0).max(0xffffffff),
  refuse_non_finite: z.boolean(),
})
export type MergeParams = z.infer<typeof mergeParamsSchema>

export const mergeResultSchema = z.strictObject({
  model_id: z.string(),
  version: z.string(),
  files: z.array(artifactRefSchema).min(1),
  tensors: z.number().int().nonnegative(),
  input_bytes: z.number().int().nonnegative(),
  output_bytes: z.number().int().nonnegative(),
  runner_seconds: z.number().nonnegative(),
  non_finite: z.array(z.strictObject({ tensor: z.string(), model: z.string(), count: z.number().int().positive() })),
})
export type MergeResult = z.infer<typeof mergeResultSchema>

// Batch inference: a JSONL file of instances (one row per line, as predict
// takes them) through a hosted model into a JSONL file of predictions.
export const batchInferenceParamsSchema = z.strictObject({
  model_id: z.string(),
  version: z.string(),
  model_artifact: artifactRefSchema,
  probe: z.strictObject({ seed: z.number().int().nonnegative(), rows: z.number().int().positive(), outputs: z.record(z.string(), z.array(z.number())) }).nullable(),
  input_name: z.string().min(1),
  row_dims: z.array(z.number().int().positive()).min(1),
  labels: z.array(z.string()).nullable(),
  input: artifactRefSchema,
})
export type BatchInferenceParams = z.infer<typeof batchInferenceParamsSchema>

export const batchInferenceResultSchema = z.strictObject({
  output: z.strictObject({ artifact_key: z.string(), sha256: z.string().regex(SHA256_HEX), size: z.number().int().nonnegative() }),
  rows: z.number().int().nonnegative(),
  model_id: z.string(),
  version: z.string(),
})
export type BatchInferenceResult = z.infer<typeof batchInferenceResultSchema>

export const jobParamsSchemas = {
  verify_artifact: verifyArtifactParamsSchema,
  merge: mergeParamsSchema,
  batch_inference: batchInferenceParamsSchema,
} satisfies Record<JobType, z.ZodType>

export const jobResultSchemas = {
  verify_artifact: verifyArtifactResultSchema,
  merge: mergeResultSchema,
  batch_inference: batchInferenceResultSchema,
} satisfies Record<JobType, z.ZodType>
