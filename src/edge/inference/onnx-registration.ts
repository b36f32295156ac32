import type { ArtifactRef } from '../../shared/job-types.ts'
import { declaredInputMismatch } from '../../shared/model-io.ts'
import type { Env } from '../env.ts'
import { ApiError } from '../errors.ts'
import type { ModelRow, VersionInspection } from '../models/model-store.ts'
import { inspectModel } from './runner-inference.ts'

export const PROBE_ROWS = 8

export function isServedOnnxFile(model: ModelRow, fileName: string): boolean {
  return model.format === 'onnx' && fileName.endsWith('.onnx')
}

// A runner opens the uploaded ONNX file before it is accepted: a file that
// does not load is refused with ONNX Runtime's own message (422), as is one
// whose real input differs from the registered declaration. What the runner
// found, and the model's answers on a seeded probe set, are returned to be
// kept on the version: predict checks requests against the former, and every runner
// that loads the model later re-checks the latter.
export async function inspectOnnxFile(env: Env, model: ModelRow, artifact: ArtifactRef): Promise<VersionInspection> {
  const seed = crypto.getRandomValues(new Uint32Array(1))[0]!
  const inspected = await inspectModel(env, artifact, { seed, rows: PROBE_ROWS })
  const mismatch = declaredInputMismatch(model.input, inspected.inputs)
  if (mismatch) throw new ApiError(422, `The model does not match its registration: ${mismatch}`, { code: 'model_mismatch', param: 'input' })
  if (inspected.outputs.length === 0) throw new ApiError(422, 'The model has no outputs', { code: 'model_mismatch' })
  return { io: { inputs: inspected.inputs, outputs: inspected.outputs }, probe: inspected.probe }
}
