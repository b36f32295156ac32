// The merge methods Moat runs and the parameters each one reads, with
// mergekit's names and defaults. `global` parameters have one value per output
// tensor; `perModel` ones have a value per input model (the base model needs
// none of the required ones).

export const MERGE_METHODS = [
  'linear',
  'slerp',
  'nuslerp',
  'task_arithmetic',
  'ties',
  'dare_ties',
  'dare_linear',
  'breadcrumbs',
  'breadcrumbs_ties',
  'della',
  'della_linear',
  'model_stock',
  'passthrough',
] as const
export type MergeMethodName = (typeof MERGE_METHODS)[number]

export type ParameterValue = number | boolean | string
export type ParameterDef = { name: string; required: boolean; default?: ParameterValue }

export type Sparsification = 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune'

export type MethodSpec = {
  global: ParameterDef[]
  perModel: ParameterDef[]
  // Whether the method needs a base_model, and how many other models it takes.
  needsBase: boolean
  models: { min: number; max: number }
  // For the task-vector family: how deltas are pruned and whether signs are elected.
  sparsification?: Sparsification
  consensus?: boolean
}

const weight: ParameterDef = { name: 'weight', required: true }
const density: ParameterDef = { name: 'density', required: false, default: 1 }

function taskArithmetic(options: {
  sparsification?: Sparsification
  consensus: boolean
  normalize: boolean
  rescale: boolean
}): MethodSpec {
  const perModel = [weight, density]
  if (options.sparsification === 'magnitude_outliers') perModel.push({ name: 'gamma', required: false, default: 0.01 })
  if (options.sparsification === 'della_magprune') perModel.push({ name: 'epsilon', required: false, default: 0.15 })
  return {
    global: [
      { name: 'int8_mask', required: false, default: false },
      { name: 'normalize', required: false, default: options.normalize },
      { name: 'rescale', required: false, default: options.rescale },
      { name: 'lambda', required: false, default: 1 },
    ],
    perModel,
    needsBase: true,
    models: { min: 1, max: Infinity },
    ...(options.sparsification ? { sparsification: options.sparsification } : {}),
    consensus: options.consensus,
  }
}

export const METHOD_SPECS: Record<MergeMethodName, MethodSpec> = {
  linear: {
    global: [{ name: 'normalize', required: false, default: true }],
    perModel: [weight],
    needsBase: false,
    models: { min: 1, max: Infinity },
  },
  slerp: { global: [{ name: 't', required: true }], perModel: [], needsBase: true, models: { min: 1, max: 1 } },
  nuslerp: {
    global: [
      { name: 'nuslerp_row_wise', required: false, default: false },
      { name: 'nuslerp_flatten', required: false, default: true },
    ],
    perModel: [weight],
    needsBase: false,
    models: { min: 2, max: 2 },
  },
  task_arithmetic: taskArithmetic({ consensus: false, normalize: false, rescale: false }),
  ties: taskArithmetic({ sparsification: 'magnitude', consensus: true, normalize: true, rescale: false }),
  dare_ties: taskArithmetic({ sparsification: 'random', consensus: true, normalize: false, rescale: true }),
  dare_linear: taskArithmetic({ sparsification: 'random', consensus: false, normalize: false, rescale: true }),
  breadcrumbs: taskArithmetic({ sparsification: 'magnitude_outliers', consensus: false, normalize: false, rescale: false }),
  breadcrumbs_ties: taskArithmetic({ sparsification: 'magnitude_outliers', consensus: true, normalize: false, rescale: false }),
  della: taskArithmetic({ sparsification: 'della_magprune', consensus: true, normalize: true, rescale: true }),
  della_linear: taskArithmetic({ sparsification: 'della_magprune', consensus: false, normalize: false, rescale: true }),
  model_stock: {
    global: [{ name: 'filter_wise', required: false, default: false }],
    perModel: [],
    needsBase: true,
    models: { min: 2, max: Infinity },
  },
  passthrough: {
    global: [],
    perModel: [{ name: 'scale', required: false, default: 1 }],
    needsBase: false,
    models: { min: 1, max: 1 },
  },
}
