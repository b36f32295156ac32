import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createShardedWriter } from '../../src/gpu-runner/tensors/sharded-writer.ts'
import { encodedSize, encodeFromFloat32, type WritableDtype } from '../../src/gpu-runner/tensors/dtype-codec.ts'

// Llama-shaped models with real tensor names, filled with seeded values:
// small ones are the merge test fixtures, large ones the end-to-end benchmark.

export type LlamaShape = { layers: number; hidden: number; intermediate: number; vocab: number }

export function llamaTensors(shape: LlamaShape): { name: string; shape: number[] }[] {
  const { hidden, intermediate, vocab } = shape
  const tensors = [{ name: 'model.embed_tokens.weight', shape: [vocab, hidden] }]
  for (let i = 0; i < shape.layers; i++) {
    const p = `model.layers.${i}`
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [hidden] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [hidden] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [hidden, intermediate] },
    )
  }
  tensors.push({ name: 'model.norm.weight', shape: [hidden] }, { name: 'lm_head.weight', shape: [vocab, hidden] })
  return tensors
}

// xorshift32: fast, seeded, the same on every machine.
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state / 4294967296
  }
}

export type SyntheticModelOptions = {
  dir: string
  shape: LlamaShape
  dtype: WritableDtype
  maxShardBytes: number
  // value(name, index) for every element; called in order.
  values: (name: string, count: number) => Float32Array
}

export async function writeSyntheticModel(options: SyntheticModelOptions): Promise<void> {
  await mkdir(options.dir, { recursive: true })
  const tensors = llamaTensors(options.shape)
  const writer = await createShardedWriter({
    dir: options.dir,
    tensors: tensors.map((tensor) => ({ ...tensor, dtype: options.dtype })),
    maxShardBytes: options.maxShardBytes,
    metadata: { format: 'pt' },
  })
  try {
    for (const tensor of tensors) {
      const values = options.values(tensor.name, tensor.shape.reduce((a, b) => a * b, 1))
      const bytes = new Uint8Array(encodedSize(options.dtype, values.length))
      encodeFromFloat32(options.dtype, values, bytes)
      await writer.write(tensor.name, bytes)
    }
    await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: options.shape.hidden,
    intermediate_size: options.shape.intermediate,
    num_hidden_layers: options.shape.layers,
    vocab_size: options.shape.vocab,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[options.dtype],
  }
  await writeFile(join(options.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
}
