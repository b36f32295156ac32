import { rm, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { seededUniform, writeSyntheticModel, type LlamaShape } from './synthetic-model.ts'

// Writes the merge test fixtures: a base model and fine-tunes of it (small,
// llama-shaped, sharded, one stored as bf16, one with a larger vocabulary),
// and one mergekit config per method. `merge-reference.py` then computes the
// expected outputs from these files.
//   node scripts/merge-fixtures/generate.ts && python3 scripts/merge-fixtures/reference.py

const ROOT = join(import.meta.dirname, '../../test/fixtures/merge')
const SHAPE: LlamaShape = { layers: 3, hidden: 16, intermediate: 32, vocab: 40 }

function baseValues(name: string, count: number): Float32Array {
  const random = seededUniform(name.length * 7919 + count)
  // Norm weights sit around 1, everything else around 0, as in a trained model.
  const centre = name.includes('norm') ? 1 : 0
  return Float32Array.from({ length: count }, () => centre + (random() - 0.5) * 0.2)
}

function fineTune(seed: number, scale: number) {
  return (name: string, count: number) => {
    const values = baseValues(name, count)
    const random = seededUniform(seed * 104729 + name.length * 31 + count)
    for (let i = 0; i < count; i++) values[i] = values[i]! + (random() - 0.5) * scale
    return values
  }
}

await rm(ROOT, { recursive: true, force: true })
const models = join(ROOT, 'models')
await writeSyntheticModel({ dir: join(models, 'base'), shape: SHAPE, dtype: 'F32', maxShardBytes: 16_000, values: baseValues })
await writeSyntheticModel({ dir: join(models, 'a'), shape: SHAPE, dtype: 'F32', maxShardBytes: 16_000, values: fineTune(1, 0.05) })
await writeSyntheticModel({ dir: join(models, 'b'), shape: SHAPE, dtype: 'F32', maxShardBytes: 1_000_000, values: fineTune(2, 0.08) })
await writeSyntheticModel({ dir: join(models, 'c'), shape: SHAPE, dtype: 'BF16', maxShardBytes: 10_000, values: fineTune(3, 0.03) })
// Four more tokens: its embeddings and lm_head have 44 rows.
await writeSyntheticModel({ dir: join(models, 'wide'), shape: { ...SHAPE, vocab: 44 }, dtype: 'F32', maxShardBytes: 1_000_000, values: fineTune(4, 0.05) })

const CONFIGS: Record<string, string> = {
  linear: `
models:
  - model: ../models/a
    parameters:
      weight: 0.6
  - model: ../models/b
    parameters:
      weight: [0.2, 0.8]
  - model: ../models/c
    parameters:
      weight:
        - filter: mlp
          value: 0.5
        - value: 0.3
merge_method: linear
dtype: float32
`,
  slerp: `
models:
  - model: ../models/base
  - model: ../models/a
merge_method: slerp
base_model: ../models/base
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 1]
    - filter: mlp
      value: [1, 0.5, 0]
    - value: 0.5
dtype: float32
`,
  nuslerp: `
models:
  - model: ../models/a
    parameters:
      weight: 0.4
  - model: ../models/b
    parameters:
      weight: 0.6
merge_method: nuslerp
base_model: ../models/base
parameters:
  nuslerp_flatten: false
dtype: float32
`,
  'nuslerp-flat-row-wise': `
models:
  - model: ../models/a
    parameters:
      weight: 1
  - model: ../models/b
    parameters:
      weight: 3
merge_method: nuslerp
parameters:
  nuslerp_row_wise: true
dtype: float32
`,
  task_arithmetic: `
models:
  - model: ../models/a
    parameters:
      weight: 0.7
  - model: ../models/b
    parameters:
      weight: -0.3
  - model: ../models/c
    parameters:
      weight: 0.5
merge_method: task_arithmetic
base_model: ../models/base
parameters:
  lambda: 0.9
dtype: float32
`,
  ties: `
models:
  - model: ../models/a
    parameters:
      density: 0.5
      weight: 0.5
  - model: ../models/b
    parameters:
      density: 0.7
      weight: 0.3
  - model: ../models/c
    parameters:
      density: 0.3
      weight: [0.2, 0.6]
merge_method: ties
base_model: ../models/base
dtype: float32
out_dtype: bfloat16
`,
  dare_ties: `
models:
  - model: ../models/a
    parameters:
      density: 0.6
      weight: 0.5
  - model: ../models/b
    parameters:
      density: 0.4
      weight: 0.5
merge_method: dare_ties
base_model: ../models/base
dtype: float32
`,
  dare_linear: `
models:
  - model: ../models/a
    parameters:
      density: 0.6
      weight: 0.5
  - model: ../models/c
    parameters:
      density: 0.5
      weight: 0.5
merge_method: dare_linear
base_model: ../models/base
parameters:
  normalize: true
dtype: float32
`,
  breadcrumbs: `
models:
  - model: ../models/a
    parameters:
      density: 0.8
      gamma: 0.05
      weight: 0.6
  - model: ../models/b
    parameters:
      density: 0.9
      gamma: 0.02
      weight: 0.4
merge_method: breadcrumbs
base_model: ../models/base
dtype: float32
`,
  breadcrumbs_ties: `
models:
  - model: ../models/a
    parameters:
      density: 0.7
      gamma: 0.1
      weight: 0.6
  - model: ../models/b
    parameters:
      density: 0.7
      gamma: 0.1
      weight: 0.4
merge_method: breadcrumbs_ties
base_model: ../models/base
dtype: float32
`,
  della: `
models:
  - model: ../models/a
    parameters:
      density: 0.5
      epsilon: 0.1
      weight: 0.5
  - model: ../models/b
    parameters:
      density: 0.6
      epsilon: 0.2
      weight: 0.5
merge_method: della
base_model: ../models/base
parameters:
  lambda: 1.1
dtype: float32
`,
  della_linear: `
models:
  - model: ../models/a
    parameters:
      density: 0.5
      weight: 0.5
  - model: ../models/c
    parameters:
      density: 0.4
      weight: 0.5
merge_method: della_linear
base_model: ../models/base
dtype: float32
`,
  model_stock: `
models:
  - model: ../models/a
  - model: ../models/b
  - model: ../models/c
merge_method: model_stock
base_model: ../models/base
dtype: float32
`,
  'model_stock-filter-wise': `
models:
  - model: ../models/a
  - model: ../models/b
merge_method: model_stock
base_model: ../models/base
parameters:
  filter_wise: true
dtype: float32
`,
  passthrough: `
slices:
  - sources:
      - model: ../models/a
        layer_range: [0, 2]
  - sources:
      - model: ../models/b
        layer_range: [1, 3]
    parameters:
      scale:
        - filter: o_proj
          value: 0.5
        - value: 1
merge_method: passthrough
dtype: float16
`,
  'tokenizer-base': `
models:
  - model: ../models/base
    parameters:
      weight: 0.5
  - model: ../models/wide
    parameters:
      weight: 0.5
merge_method: linear
base_model: ../models/base
tokenizer_source: base
dtype: float32
`,
  'tokenizer-wide': `
models:
  - model: ../models/wide
    parameters:
      weight: 0.5
  - model: ../models/a
    parameters:
      weight: 0.5
merge_method: task_arithmetic
base_model: ../models/base
tokenizer_source: ../models/wide
dtype: float32
`,
}

await mkdir(join(ROOT, 'configs'), { recursive: true })
for (const [name, text] of Object.entries(CONFIGS)) await writeFile(join(ROOT, 'configs', `${name}.yml`), text.trimStart())
