import { parseDocument, YAMLError } from 'yaml'
import { z } from 'zod'
import { MERGE_METHODS, METHOD_SPECS, type MergeMethodName, type ParameterValue } from './merge-methods.ts'

// mergekit's configuration format, read from YAML (or JSON, which is YAML):
// `models` or `slices`, `base_model`, `merge_method`, `parameters` at three
// levels, `dtype`, `out_dtype`, `tokenizer_source`. Parameter values are
// scalars, gradients (lists interpolated over the layer index) or lists of
// `{filter, value}` conditions on the tensor name. Every error names the key
// path that is wrong, e.g. `slices[0].sources[1].layer_range`.

export class MergeConfigError extends Error {
  readonly issues: { path: string; message: string }[]

  constructor(issues: { path: string; message: string }[]) {
    super(issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message)).join('; '))
    this.name = 'MergeConfigError'
    this.issues = issues
  }
}

const scalar = z.union([z.number(), z.boolean(), z.string()])
const gradient = z.union([z.array(z.number()).min(1), z.array(z.union([z.string(), z.boolean()])).min(1)])
const scalarOrGradient = z.union([scalar, gradient], {
  error: 'must be a finite number, a boolean, a string, or a non-empty list of them',
})
const condition = z.strictObject({ filter: z.string().nullable().optional(), value: scalarOrGradient })
export const parameterSettingSchema = z.union([scalarOrGradient, condition, z.array(condition).min(1)], {
  error: 'must be a finite number, a boolean, a string, a list of them, or a list of {filter, value} conditions',
})
export type ParameterSetting = z.infer<typeof parameterSettingSchema>

const parametersSchema = z.record(z.string(), parameterSettingSchema)
export type Parameters = z.infer<typeof parametersSchema>

const modelRef = z.string().min(1, 'must name a model')

export const DTYPE_NAMES = {
  float32: 'F32',
  fp32: 'F32',
  float16: 'F16',
  fp16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  bf16: 'BF16',
} as const
export type OutputDtype = (typeof DTYPE_NAMES)[keyof typeof DTYPE_NAMES]
const dtypeSchema = z.enum(Object.keys(DTYPE_NAMES) as [keyof typeof DTYPE_NAMES, ...(keyof typeof DTYPE_NAMES)[]])

const layerRange = z
  .tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])
  .refine(([start, end]) => start < end, 'must be [start, end) with start < end')

const sourceSchema = z.strictObject({ model: modelRef, layer_range: layerRange, parameters: parametersSchema.optional() })
const sliceSchema = z.strictObject({
  sources: z.array(sourceSchema).min(1),
  base_model: modelRef.optional(),
  parameters: parametersSchema.optional(),
})

export const mergeConfigSchema = z
  .strictObject({
    merge_method: z.enum(MERGE_METHODS),
    base_model: modelRef.optional(),
    models: z.array(z.strictObject({ model: modelRef, parameters: parametersSchema.optional() })).min(1).optional(),
    slices: z.array(sliceSchema).min(1).optional(),
    parameters: parametersSchema.optional(),
    dtype: dtypeSchema.optional(),
    out_dtype: dtypeSchema.optional(),
    tokenizer_source: z.string().min(1).optional(),
  })
  .superRefine((config, ctx) => {
    if (!config.models === !config.slices) {
      ctx.addIssue({ code: 'custom', path: [], message: "exactly one of 'models' or 'slices' must be given" })
      return
    }
    const spec = METHOD_SPECS[config.merge_method]
    if (spec.needsBase && !config.base_model && !config.slices?.every((slice) => slice.base_model)) {
      ctx.addIssue({ code: 'custom', path: ['base_model'], message: `${config.merge_method} needs a base_model` })
    }
    config.slices?.forEach((slice, i) => {
      const lengths = slice.sources.map((source) => source.layer_range[1] - source.layer_range[0])
      if (lengths.some((length) => length !== lengths[0])) {
        ctx.addIssue({ code: 'custom', path: ['slices', i, 'sources'], message: `every source of a slice must span the same number of layers, got ${lengths.join(', ')}` })
      }
    })
    const groups = config.models
      ? [{ path: ['models'], models: config.models.map((m) => m.model), base: config.base_model }]
      : config.slices!.map((slice, i) => ({ path: ['slices', i, 'sources'], models: slice.sources.map((s) => s.model), base: slice.base_model ?? config.base_model }))
    for (const group of groups) {
      const others = group.models.filter((model) => model !== group.base).length
      const { min, max } = spec.models
      if (others < min || others > max) {
        const wanted = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`
        ctx.addIssue({ code: 'custom', path: group.path, message: `${config.merge_method} takes ${wanted} model(s) besides the base model, got ${others}` })
      }
    }
    for (const { path, parameters } of parameterMaps(config)) checkParameters(config.merge_method, parameters, path, ctx)
    if (config.tokenizer_source === 'union') {
      ctx.addIssue({ code: 'custom', path: ['tokenizer_source'], message: "'union' is not supported; use 'base' or a model" })
    }
  })
export type MergeConfig = z.infer<typeof mergeConfigSchema>

type ConfigShape = {
  parameters?: Parameters | undefined
  models?: { parameters?: Parameters | undefined }[] | undefined
  slices?: { parameters?: Parameters | undefined; sources: { parameters?: Parameters | undefined }[] }[] | undefined
}

// Every `parameters` map of a config with its key path.
function parameterMaps(config: ConfigShape): { path: (string | number)[]; parameters: Parameters }[] {
  const maps: { path: (string | number)[]; parameters: Parameters | undefined }[] = [{ path: ['parameters'], parameters: config.parameters }]
  config.models?.forEach((entry, i) => maps.push({ path: ['models', i, 'parameters'], parameters: entry.parameters }))
  config.slices?.forEach((slice, i) => {
    maps.push({ path: ['slices', i, 'parameters'], parameters: slice.parameters })
    slice.sources.forEach((source, j) => maps.push({ path: ['slices', i, 'sources', j, 'parameters'], parameters: source.parameters }))
  })
  return maps.filter((map): map is { path: (string | number)[]; parameters: Parameters } => map.parameters !== undefined)
}

// The values a setting can take, each with its key path below the setting.
function settingValues(setting: ParameterSetting, path: (string | number)[]): { path: (string | number)[]; value: ParameterValue }[] {
  if (!Array.isArray(setting)) {
    if (typeof setting === 'object') return settingValues(setting.value, [...path, 'value'])
    return [{ path, value: setting }]
  }
  return (setting as (ParameterValue | { value: ParameterSetting })[]).flatMap((entry, i) =>
    typeof entry === 'object' ? settingValues(entry.value, [...path, i, 'value']) : [{ path: [...path, i], value: entry }],
  )
}

// Parameters the method reads are checked here, not on a runner after the
// job was queued: numbers must be numbers (fractions in [0, 1] where mergekit
// takes a fraction), switches booleans. Parameters the method does not read
// are left alone, as mergekit leaves them.
function checkParameters(method: MergeMethodName, parameters: Parameters, path: (string | number)[], ctx: z.RefinementCtx): void {
  const spec = METHOD_SPECS[method]
  for (const [name, setting] of Object.entries(parameters)) {
    const def = spec.global.find((d) => d.name === name) ?? spec.perModel.find((d) => d.name === name)
    if (!def) continue
    const kind = typeof def.default === 'boolean' ? 'boolean' : 'number'
    const range = FRACTION_PARAMETERS.has(name) ? FRACTION_RANGE : null
    for (const { path: below, value } of settingValues(setting, [])) {
      const at = [...path, name, ...below]
      if (kind === 'boolean') {
        if (typeof value !== 'boolean') ctx.addIssue({ code: 'custom', path: at, message: `${name} must be true or false, got ${JSON.stringify(value)}` })
        continue
      }
      if (typeof value !== 'number') {
        ctx.addIssue({ code: 'custom', path: at, message: `${name} must be a number, got ${JSON.stringify(value)}` })
      } else if (range && (value < range[0] || value > range[1])) {
        ctx.addIssue({ code: 'custom', path: at, message: `${name} must be between ${range[0]} and ${range[1]}, got ${value}` })
      }
    }
  }
}

// Parameters that are fractions of a tensor's elements.
const FRACTION_PARAMETERS = new Set(['density', 'gamma', 'epsilon'])
const FRACTION_RANGE = [0, 1] as const

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '')
}

export function validateMergeConfig(input: unknown): MergeConfig {
  const parsed = mergeConfigSchema.safeParse(input)
  if (parsed.success) return parsed.data
  throw new MergeConfigError(
    parsed.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return { path: formatPath([...issue.path, ...issue.keys.slice(0, 1)]), message: `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}` }
      }
      return { path: formatPath(issue.path), message: issue.message }
    }),
  )
}

// Parses a mergekit YAML (or JSON) document and validates it.
export function parseMergeConfig(text: string): MergeConfig {
  let document: unknown
  try {
    // Warnings count as errors: an unknown tag or an ambiguous alias would
    // otherwise be read as something the author did not write (PyYAML, which
    // mergekit uses, refuses them too), and tenant input never reaches the log.
    const parsed = parseDocument(text, { uniqueKeys: true, prettyErrors: true, logLevel: 'silent' })
    const problem = parsed.errors[0] ?? parsed.warnings[0]
    if (problem) throw problem
    // Aliases are capped so a small document cannot expand into a huge one.
    document = parsed.toJS({ maxAliasCount: 100 })
  } catch (error) {
    // The alias cap surfaces as a ReferenceError rather than a YAMLError, and
    // nesting deep enough to exhaust the stack as a RangeError.
    if (error instanceof YAMLError || error instanceof ReferenceError || error instanceof RangeError) {
      throw new MergeConfigError([{ path: '', message: `invalid YAML: ${error.message}` }])
    }
    throw error
  }
  return validateMergeConfig(document)
}

export function outputDtypeOf(name: keyof typeof DTYPE_NAMES | undefined): OutputDtype | undefined {
  return name === undefined ? undefined : DTYPE_NAMES[name]
}

// One setting's value for a tensor at layer position t (0 for the first
// layer of a slice, 1 for the last), as mergekit evaluates it: numeric lists
// interpolate linearly, other lists pick a step, conditions apply in order
// and the first whose filter is empty, '*' or a substring of the tensor name
// wins. Undefined when no condition matches.
export function evaluateSetting(setting: ParameterSetting, tensorName: string, t: number): ParameterValue | undefined {
  if (!Array.isArray(setting)) {
    if (typeof setting === 'object') return conditionMatches(setting.filter, tensorName) ? evaluateSetting(setting.value, tensorName, t) : undefined
    return setting
  }
  if (setting.every((entry): entry is number => typeof entry === 'number')) {
    const scaled = t * (setting.length - 1)
    const i0 = Math.floor(scaled)
    const i1 = Math.min(setting.length - 1, i0 + 1)
    const fraction = scaled - i0
    return (1 - fraction) * setting[i0]! + fraction * setting[i1]!
  }
  if (setting.every((entry) => typeof entry !== 'object')) return setting[Math.floor(t * (setting.length - 1))] as ParameterValue
  for (const entry of setting as { filter?: string | null | undefined; value: ParameterSetting }[]) {
    if (conditionMatches(entry.filter, tensorName)) return evaluateSetting(entry.value, tensorName, t)
  }
  return undefined
}

function conditionMatches(filter: string | null | undefined, tensorName: string): boolean {
  return filter === undefined || filter === null || filter === '*' || tensorName.includes(filter)
}

export type SliceSource = { model: string; layer_range: [number, number]; parameters?: Parameters | undefined }
export type OutputSlice = { sources: SliceSource[]; base_model?: string | undefined; parameters?: Parameters | undefined }

// mergekit's precedence: the source's own setting for its model, then the
// slice's, then the global one; the first that yields a value wins.
export function resolveParameter(
  config: MergeConfig,
  slice: OutputSlice,
  name: string,
  model: string | null,
  tensorName: string,
  t: number,
): ParameterValue | undefined {
  const levels: (Parameters | undefined)[] = [
    ...(model === null ? [] : slice.sources.filter((source) => source.model === model).map((source) => source.parameters)),
    slice.parameters,
    config.parameters,
  ]
  for (const parameters of levels) {
    const setting = parameters?.[name]
    if (setting === undefined) continue
    const value = evaluateSetting(setting, tensorName, t)
    if (value !== undefined) return value
  }
  return undefined
}

// The models a config reads, base model first.
export function referencedModels(config: MergeConfig): string[] {
  const names = new Set<string>()
  if (config.base_model) names.add(config.base_model)
  for (const entry of config.models ?? []) names.add(entry.model)
  for (const slice of config.slices ?? []) {
    if (slice.base_model) names.add(slice.base_model)
    for (const source of slice.sources) names.add(source.model)
  }
  return [...names]
}

// `models:` is shorthand for one slice over every layer of every model, the
// base model added as mergekit adds it (linear and passthrough have no use for
// one); `layerCounts` gives each model's number of layers.
export function outputSlices(config: MergeConfig, layerCounts: (model: string) => number): OutputSlice[] {
  if (config.slices) return config.slices
  const sources: SliceSource[] = config.models!.map((entry) => ({
    model: entry.model,
    layer_range: [0, layerCounts(entry.model)],
    parameters: entry.parameters,
  }))
  const usesBase = config.merge_method !== 'linear' && config.merge_method !== 'passthrough'
  if (config.base_model && usesBase && !sources.some((source) => source.model === config.base_model)) {
    sources.push({ model: config.base_model, layer_range: [0, layerCounts(config.base_model)] })
  }
  return [{ sources }]
}
