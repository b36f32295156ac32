// WGSL for the element-wise kernel ops, one shader per op and shape (model
// count, variant), generated like the CPU's combine loops so every operand
// is a named binding. Each invocation computes one element of a chunk; the
// chunk's arrays are bound from their element 0, and `start` (the chunk's
// first index in the tensor) is only needed where the index itself matters
// (DARE's hash).
//
// Bindings: 0 is the uniform `params` (head: count, start, key, threshold;
// f: the op's float parameters), then the op's storage arrays in order. The
// arithmetic is float32 (WGSL has no float64): where the CPU kernels keep
// float64 intermediates (weighted sums, coefficients) a result may differ
// from the CPU's by rounding; comparisons and masks are integer arithmetic on
// the float bits, so they decide as the CPU does.

export const WORKGROUP_SIZE = 256

export type Shader = {
  // Cache key: the same key always generates the same code.
  key: string
  code: string
  // Storage arrays bound after the uniform, in binding order.
  storage: number
  // Float parameters in params.f.
  floats: number
}

const float = (j: number) => `params.f[${j >> 2}][${j & 3}]`

function shader(key: string, storage: string[], floats: number, body: string, helpers = ''): Shader {
  const code = `struct Params { head: vec4<u32>, f: array<vec4<f32>, ${Math.max(1, Math.ceil(floats / 4))}> }
@group(0) @binding(0) var<uniform> params: Params;
${storage.map((declaration, j) => `@group(0) @binding(${j + 1}) var<storage, ${declaration}>;`).join('\n')}
${helpers}
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  // Dispatches wider than 65535 workgroups wrap into y.
  let i = id.x + id.y * groups.x * ${WORKGROUP_SIZE}u;
  if (i >= params.head.x) { return; }
${body}
}
`
  return { key, code, storage: storage.length, floats }
}

// array = array - base
export function subShader(): Shader {
  return shader('sub', ['read_write> x: array<f32', 'read> base: array<f32'], 0, '  x[i] = x[i] - base[i];')
}

// array = array × factor
export function scaleShader(): Shader {
  return shader('scale', ['read_write> x: array<f32'], 1, `  x[i] = x[i] * ${float(0)};`)
}

// DARE's drop: kept where the counter-based draw of kernels.ts's uniformAt
// falls below p. u32 multiplication wraps as Math.imul does, so the hash is
// the CPU's to the bit; head.w is the threshold on its top 24 bits that
// decides exactly as `uniformAt(key, index) < p` (see bernoulliThreshold).
// The array is bound as u32 words: the drop is integer work on the float
// bits, because float arithmetic here is not the CPU's IEEE arithmetic
// (SwiftShader flushes subnormals to zero and folds x × 0.0 to 0). A kept
// value keeps its bits; a dropped one becomes what x × 0 gives on the CPU:
// ±0 by its sign bit, NaN for an infinity or a NaN.
export function bernoulliShader(): Shader {
  const helpers = `fn mix32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x85ebca6bu;
  x ^= x >> 13u;
  x *= 0xc2b2ae35u;
  x ^= x >> 16u;
  return x;
}`
  return shader(
    'bernoulliMask',
    ['read_write> x: array<u32'],
    0,
    `  let index = params.head.y + i;
  let draw = mix32((index * 0x9e3779b1u) ^ params.head.z) >> 8u;
  if (draw < params.head.w) { return; }
  let e = x[i];
  x[i] = select(e & 0x80000000u, 0x7fc00000u, (e & 0x7f800000u) == 0x7f800000u);`,
    helpers,
  )
}

// How many of the 2^24 draws `(hash >> 8) / 2^24 < p` keeps: draw < threshold
// exactly when draw / 2^24 < p (the division by a power of two is exact).
export function bernoulliThreshold(p: number): number {
  if (!(p > 0)) return 0
  return Math.min(16777216, Math.ceil(p * 16777216))
}

// out = Σ c[m] × a[m], summed in model order in float32 (the CPU rounds each
// partial sum to float32 too, but multiplies by float64 coefficients).
export function affineShader(k: number): Shader {
  const arrays = Array.from({ length: k }, (_, m) => `read> a${m}: array<f32`)
  const sum = Array.from({ length: k }, (_, m) => `${float(m)} * a${m}[i]`).join(' + ')
  return shader(`affine:${k}`, [...arrays, 'read_write> out: array<f32'], k, `  out[i] = ${sum};`)
}

// A weight's sign, for the sign election. A zero weight counts as '+': its
// product is ±0 (or NaN), which adds nothing to the sum, the mix or the
// divisor whether or not it agrees, and NaN either way; deciding it at run
// time keeps the NaN, where a constant 0 agreement would be folded away.
export type WeightSign = '+' | '-'

export function weightSigns(weights: number[]): WeightSign[] {
  return weights.map((w) => (w < 0 ? '-' : '+'))
}

export type TaskCombineShape = {
  k: number
  consensus: boolean
  normalize: boolean
  fromInputs: boolean
  // Per model, for the sign election only.
  signs: WeightSign[]
}

// kernels.ts's taskCombine without masks. Floats: the k weights, then the
// divisor (without consensus) and λ.
//
// Without consensus: out = base + (Σ w·d / divisor) · λ, d taken as
// model − base in float32 for fromInputs (exactly the CPU's Math.fround).
// With consensus, the sign election decides on bits as the CPU's does: a
// delta agrees when it is nonzero and the sign of w·d (the delta's sign bit,
// flipped by a negative weight) matches the sign of Σ w·d (negative only
// when the sum is < 0: -0 and NaN count as +). Deciding from the float32
// product instead would drop a subnormal delta whose product underflows (or
// is flushed to zero), and with it its weight from the divisor. Agreement
// multiplies (x × 0 or 1, not a select), so a dropped infinity gives NaN as
// on the CPU. The sum's sign is the float32 sum's: where the float64 sum is
// within rounding of zero the two may elect differently.
export function taskCombineShader({ k, consensus, normalize, fromInputs, signs }: TaskCombineShape): Shader {
  const models = Array.from({ length: k }, (_, m) => m)
  const storage = [...models.map((m) => `read> d${m}: array<f32`), 'read> base: array<f32', 'read_write> out: array<f32']
  const weight = (m: number) => float(m)
  const lambda = float(consensus ? k : k + 1)
  const load = (m: number) => (fromInputs ? `  let x${m} = ${weight(m)} * (d${m}[i] - b);` : `  let x${m} = ${weight(m)} * d${m}[i];`)
  const sum = models.map((m) => `x${m}`).join(' + ')
  let body = `  let b = base[i];\n${models.map(load).join('\n')}\n`
  if (!consensus) {
    body += `  out[i] = b + ((${sum}) / ${float(k)}) * ${lambda};`
    return shader(`taskCombine:${k}:plain:${fromInputs}`, storage, k + 2, body)
  }
  body += `  let negative = (${sum}) < 0.0;\n`
  for (const m of models) {
    body += `  let e${m} = bitcast<u32>(d${m}[i]);\n`
    const flip = signs[m] === '-' ? ' ^ 1u' : ''
    body += `  let a${m} = select(0.0, 1.0, (e${m} & 0x7fffffffu) != 0u && (((e${m} >> 31u)${flip}) == 1u) == negative);\n`
  }
  body += `  let mixed = ${models.map((m) => `x${m} * a${m}`).join(' + ')};\n`
  body += `  var divisor = ${models.map((m) => `${weight(m)} * a${m}`).join(' + ')};\n`
  body += '  if (divisor == 0.0) { divisor = 1.0; }\n'
  body += `  out[i] = b + (${normalize ? 'mixed / divisor' : 'mixed'}) * ${lambda};`
  return shader(`taskCombine:${k}:consensus:${normalize}:${signs.join('')}`, storage, k + 1, body)
}
