import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { flattenInstances } from '../../shared/model-io.ts'
import { uploadArtifactFile } from '../artifact-upload.ts'
import { JobError } from '../job-error.ts'
import type { JobHandler } from '../job-registry.ts'

// Rows per model run: large enough to amortise a run, small enough to keep
// memory flat whatever the file's size.
const CHUNK_ROWS = 256

// A JSONL file of instances (each line one row, as predict takes them), read
// line by line from the verified cache, run through the model in chunks, and
// written as JSONL (`{"prediction", "probabilities"}` per line, in order) to an
// output artifact uploaded through the edge. Progress counts rows.
export const batchInference: JobHandler<'batch_inference'> = async ({ job, params, signal, reportProgress, checkpoint, edge, cache, models }) => {
  if (!models) throw new JobError('this runner serves no inference models', 'inference_unavailable')
  const input = await cache.fetchVerified(params.input, { signal })
  if (input.status !== 'verified') throw new JobError(`the input file is ${input.status}`, `input_${input.status}`)
  const model = await models.get(params.model_artifact, params.probe)
  const width = params.row_dims.reduce((product, dim) => product * dim, 1)
  const dir = await mkdtemp(join(tmpdir(), 'moat-batch-'))
  const outputPath = join(dir, 'predictions.jsonl')
  const output = createWriteStream(outputPath)
  let rows = 0
  try {
    let chunk: unknown[] = []
    let chunkLines: number[] = []
    let line = 0
    const flush = async () => {
      if (chunk.length === 0) return
      const checked = flattenInstances(chunk, params.row_dims, CHUNK_ROWS)
      if (!checked.ok) {
        const row = Number(checked.param.split('.')[1] ?? 0)
        throw new JobError(`line ${chunkLines[row]}: ${checked.message.replace(/^instances\[\d+\]/, 'the row')}`, 'invalid_input')
      }
      const outputs = await model.run(params.input_name, Float32Array.from(checked.data), [checked.rows, ...params.row_dims])
      const first = Object.values(outputs)[0]
      if (!first) throw new JobError('the model returned no output', 'model_failed')
      const outWidth = first.data.length / checked.rows
      for (let row = 0; row < checked.rows; row++) {
        const probabilities = Array.from(first.data.subarray(row * outWidth, (row + 1) * outWidth))
        const best = probabilities.indexOf(Math.max(...probabilities))
        output.write(`${JSON.stringify({ prediction: params.labels?.[best] ?? String(best), probabilities })}\n`)
      }
      rows += checked.rows
      reportProgress({ done: rows, total: null, unit: 'rows' })
      chunk = []
      chunkLines = []
      await checkpoint()
    }
    const lines = createInterface({ input: createReadStream(input.path, { signal }), crlfDelay: Infinity })
    for await (const text of lines) {
      line++
      if (!text.trim()) continue
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        throw new JobError(`line ${line} is not JSON`, 'invalid_input')
      }
      const row = Array.isArray(parsed) ? parsed : (parsed as { instance?: unknown } | null)?.instance
      if (!Array.isArray(row) || row.flat(params.row_dims.length).length !== width) {
        throw new JobError(`line ${line} must be a row of ${width} numbers (or {"instance": row})`, 'invalid_input')
      }
      chunk.push(row)
      chunkLines.push(line)
      if (chunk.length === CHUNK_ROWS) await flush()
    }
    await flush()
    if (rows === 0) throw new JobError('the input file has no rows', 'invalid_input')
    await new Promise<void>((resolve, reject) => output.end((error?: Error | null) => (error ? reject(error) : resolve())))
    const uploaded = await uploadArtifactFile(edge, { jobId: job.job_id, filename: 'predictions.jsonl', path: outputPath, signal })
    return {
      output: { artifact_key: uploaded.artifact_key, sha256: uploaded.sha256, size: uploaded.size },
      rows,
      model_id: params.model_id,
      version: params.version,
    }
  } finally {
    output.destroy()
    await rm(dir, { recursive: true, force: true })
  }
}
