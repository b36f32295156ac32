import { isJsonObject, parseStrictJson, StrictJsonError } from './strict-json.ts'
import { SafetensorsError } from './safetensors-header.ts'

// `model.safetensors.index.json`: which shard holds each tensor of a sharded
// model. Shard names are plain file names beside the index, never paths, so
// an index cannot point a reader outside the model's directory.

export const SAFETENSORS_INDEX_NAME = 'model.safetensors.index.json'

export type SafetensorsIndex = {
  metadata: Record<string, unknown>
  weightMap: Map<string, string>
  // Shard file names in first-use order.
  shards: string[]
}

const SHARD_NAME = /^[A-Za-z0-9._-]+\.safetensors$/

export function parseSafetensorsIndex(text: string): SafetensorsIndex {
  let json
  try {
    json = parseStrictJson(text)
  } catch (error) {
    throw new SafetensorsError(`index is not valid JSON: ${error instanceof StrictJsonError ? error.message : String(error)}`)
  }
  if (!isJsonObject(json) || !isJsonObject(json.weight_map)) throw new SafetensorsError('index has no weight_map object')
  const metadata = isJsonObject(json.metadata) ? { ...json.metadata } : {}
  const weightMap = new Map<string, string>()
  const shards: string[] = []
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string' || !SHARD_NAME.test(shard) || shard.startsWith('.')) {
      throw new SafetensorsError(`index maps ${JSON.stringify(name)} to ${JSON.stringify(shard)}, not a shard file name`)
    }
    weightMap.set(name, shard)
    if (!shards.includes(shard)) shards.push(shard)
  }
  return { metadata, weightMap, shards }
}
