import {
  DTYPE_NAMES,
  outputSlices,
  resolveParameter,
  type MergeConfig,
  type OutputSlice,
} from '../../shared/merge-config.ts'
import { METHOD_SPECS, type ParameterValue } from '../../shared/merge-methods.ts'
import { elementCount, SAFETENSORS_DTYPE_SIZES } from '../../shared/safetensors-header.ts'
import { isReadableFloat, type WritableDtype } from '../tensors/dtype-codec.ts'
import type { ModelTensor, SafetensorsModel } from '../tensors/safetensors-model.ts'
import { MergeError } from './merge-tensor.ts'

// Which output tensors a config produces and where each comes from, before
// any tensor data is read: layer tensors slice by slice (renumbered in output
// order, so passthrough slices stack into a frankenmerge), the tensors before
// the layers (embeddings) from the first slice at t = 0 and the ones after
// from the last slice at t = 1, as mergekit plans them. Every shape, dtype,
// missing tensor and missing parameter is found here, naming the tensor and
// the models, so a bad merge fails before it writes anything.

export type PlannedSource = {
  model: string
  tensor: ModelTensor
  params: Record<string, ParameterValue | undefined>
  // Embeddings of another vocabulary size: the rows this input contributes,
  // the rest taken from `fill` (the tokenizer source).
  rows: number
  fill: ModelTensor | null
}

export type PlannedTensor = {
  name: string
  shape: number[]
  dtype: WritableDtype
  base: PlannedSource | null
  inputs: PlannedSource[]
  params: Record<string, ParameterValue | undefined>
  t: number
}

export type MergePlan = {
  method: MergeConfig['merge_method']
  tensors: PlannedTensor[]
  layers: number
  inputBytes: number
  outputBytes: number
}

const LAYER_NAME = /^((?:.*?\.)?(?:layers|h|blocks|layer))\.(\d+)\.(.+)$/
const EMBEDDING_NAME = /embed_tokens|lm_head|wte|word_embeddings|embed_in|embed_out/

export function layerOf(name: string): { prefix: string; index: number; suffix: string } | null {
  const match = LAYER_NAME.exec(name)
  return match ? { prefix: match[1]!, index: Number(match[2]), suffix: match[3]! } : null
}

export function layerCount(model: SafetensorsModel): number {
  let count = 0
  for (const name of model.tensors.keys()) {
    const layer = layerOf(name)
    if (layer) count = Math.max(count, layer.index + 1)
  }
  return count
}

function usesBase(method: MergeConfig['merge_method']): boolean {
  return method !== 'linear' && method !== 'passthrough'
}

export function planMerge(config: MergeConfig, models: Map<string, SafetensorsModel>): MergePlan {
  const model = (name: string) => {
    const found = models.get(name)
    if (!found) throw new MergeError(`model ${name} was not loaded`)
    return found
  }
  const slices = outputSlices(config, (name) => layerCount(model(name)))
  slices.forEach((slice, i) =>
    slice.sources.forEach((source, j) => {
      const layers = layerCount(model(source.model))
      if (source.layer_range[1] > layers) {
        throw new MergeError(`slices[${i}].sources[${j}].layer_range: [${source.layer_range.join(', ')}) exceeds the ${layers} layers of ${source.model}`)
      }
    }),
  )
  const spec = METHOD_SPECS[config.merge_method]
  const tensors: PlannedTensor[] = []

  const plan = (outName: string, slice: OutputSlice, sourceNames: string[], t: number) => {
    const baseName = slice.base_model ?? config.base_model
    const sources = slice.sources.map((source, j) => {
      const tensor = model(source.model).tensors.get(sourceNames[j]!)
      if (!tensor) throw new MergeError(`tensor ${sourceNames[j]} is missing from model ${source.model}`)
      if (!isReadableFloat(tensor.dtype)) throw new MergeError(`tensor ${sourceNames[j]} of model ${source.model} is ${tensor.dtype}; only float tensors can be merged`)
      return { model: source.model, name: sourceNames[j]!, tensor }
    })
    const shape = outputShape(outName, sources, config, baseName)
    const withBase = usesBase(config.merge_method) && baseName !== undefined
    const baseIndex = withBase ? sources.findIndex((source) => source.model === baseName) : -1
    if (spec.needsBase && baseIndex < 0) throw new MergeError(`${config.merge_method} needs the base model ${baseName ?? '(none given)'} among the sources of every slice`)

    const params: Record<string, ParameterValue | undefined> = {}
    for (const def of spec.global) {
      const value = resolveParameter(config, slice, def.name, null, outName, t) ?? def.default
      if (value === undefined && def.required) throw new MergeError(`missing required parameter ${def.name} for ${outName}`)
      params[def.name] = value
    }
    const rowsOf = (tensor: ModelTensor) => (shape.length === 0 ? 1 : Math.min(shape[0]!, tensor.shape[0] ?? 1))
    const fill = fillSource(config, sources, baseName, shape)
    const planned = sources.map((source, j): PlannedSource => {
      const isBase = j === baseIndex
      const sourceParams: Record<string, ParameterValue | undefined> = {}
      for (const def of spec.perModel) {
        const value = resolveParameter(config, slice, def.name, source.model, source.name, t) ?? def.default
        if (value === undefined && def.required && !isBase) throw new MergeError(`missing required parameter ${def.name} for ${source.model} in ${outName}`)
        sourceParams[def.name] = value
      }
      const rows = rowsOf(source.tensor)
      return { model: source.model, tensor: source.tensor, params: sourceParams, rows, fill: rows < (shape[0] ?? 1) ? fill : null }
    })
    const reference = (baseIndex >= 0 ? sources[baseIndex] : sources[0])!.tensor
    tensors.push({
      name: outName,
      shape,
      dtype: outputDtype(config, reference),
      base: baseIndex >= 0 ? planned[baseIndex]! : null,
      inputs: planned.filter((_, j) => j !== baseIndex),
      params,
      t,
    })
  }

  const nonLayer = (slice: OutputSlice, wantPre: boolean) => {
    const baseName = slice.base_model ?? config.base_model
    const reference = slice.sources.find((source) => source.model === baseName) ?? slice.sources[0]!
    return [...model(reference.model).tensors.keys()].filter((name) => !layerOf(name) && isPre(name) === wantPre)
  }

  const first = slices[0]!
  for (const name of nonLayer(first, true)) plan(name, first, first.sources.map(() => name), 0)
  let outLayer = 0
  for (const slice of slices) {
    const count = slice.sources[0]!.layer_range[1] - slice.sources[0]!.layer_range[0]
    for (let offset = 0; offset < count; offset++) {
      const t = count > 1 ? offset / (count - 1) : 1
      const lead = slice.sources[0]!
      const leadIndex = lead.layer_range[0] + offset
      const leadNames = [...model(lead.model).tensors.keys()].filter((name) => layerOf(name)?.index === leadIndex)
      for (const leadName of leadNames) {
        const { prefix, suffix } = layerOf(leadName)!
        const sourceNames = slice.sources.map((source) => `${prefix}.${source.layer_range[0] + offset}.${suffix}`)
        plan(`${prefix}.${outLayer}.${suffix}`, slice, sourceNames, t)
      }
      outLayer++
    }
  }
  const last = slices.at(-1)!
  for (const name of nonLayer(last, false)) plan(name, last, last.sources.map(() => name), 1)

  const bytesOf = (tensor: ModelTensor) => tensor.end - tensor.begin
  return {
    method: config.merge_method,
    tensors,
    layers: outLayer,
    inputBytes: tensors.reduce((sum, t) => sum + [t.base, ...t.inputs].reduce((s, source) => s + (source ? bytesOf(source.tensor) : 0), 0), 0),
    outputBytes: tensors.reduce((sum, t) => sum + elementCount(t.shape, t.name) * SAFETENSORS_DTYPE_SIZES[t.dtype], 0),
  }
}

function isPre(name: string): boolean {
  return /embed/.test(name) && !/embed_out/.test(name)
}

function outputDtype(config: MergeConfig, reference: ModelTensor): WritableDtype {
  const named = config.out_dtype ?? config.dtype
  if (named) return DTYPE_NAMES[named]
  return reference.dtype === 'F16' || reference.dtype === 'BF16' ? reference.dtype : 'F32'
}

type Source = { model: string; name: string; tensor: ModelTensor }

// Equal shapes, or for embeddings of different vocabulary sizes the rows of
// the tokenizer source (the base model for 'base'), or without one the
// smallest vocabulary, as mergekit's rectify_embed_sizes does.
function outputShape(name: string, sources: Source[], config: MergeConfig, baseName: string | undefined): number[] {
  const shapes = sources.map((source) => source.tensor.shape)
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((dim, i) => dim === b[i])
  if (shapes.every((shape) => same(shape, shapes[0]!))) return shapes[0]!
  const describe = () => sources.map((source) => `${source.model} [${source.tensor.shape.join(', ')}]`).join(', ')
  const tails = shapes.map((shape) => shape.slice(1))
  if (!EMBEDDING_NAME.test(name) || !tails.every((tail) => same(tail, tails[0]!)) || shapes.some((shape) => shape.length === 0)) {
    throw new MergeError(`shape mismatch for ${name}: ${describe()}`)
  }
  const sourceName = config.tokenizer_source === 'base' ? baseName : config.tokenizer_source
  if (sourceName === undefined) return [Math.min(...shapes.map((shape) => shape[0]!)), ...tails[0]!]
  const source = sources.find((entry) => entry.model === sourceName)
  if (!source) throw new MergeError(`tokenizer_source ${sourceName} is not among the models merged into ${name}`)
  return [source.tensor.shape[0]!, ...tails[0]!]
}

function fillSource(config: MergeConfig, sources: Source[], baseName: string | undefined, shape: number[]): ModelTensor | null {
  const sourceName = config.tokenizer_source === 'base' ? baseName : config.tokenizer_source
  const source = sources.find((entry) => entry.model === sourceName && entry.tensor.shape[0] === shape[0])
  return source?.tensor ?? null
}
