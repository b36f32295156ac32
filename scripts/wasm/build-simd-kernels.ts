import { readFile, writeFile } from 'node:fs/promises'
import wabt from 'wabt'

// Assembles src/gpu-runner/merge/cpu/simd-kernels.wat into the .wasm beside
// it, which is committed (the runner never assembles at run time).
// test/gpu-runner/merge/simd-kernels.test.ts checks the two agree.
export async function assembleSimdKernels(): Promise<Uint8Array> {
  const source = await readFile(new URL('../../src/gpu-runner/merge/cpu/simd-kernels.wat', import.meta.url), 'utf8')
  const module = (await wabt()).parseWat('simd-kernels.wat', source, { simd: true })
  try {
    module.validate()
    return module.toBinary({}).buffer
  } finally {
    module.destroy()
  }
}

if (import.meta.main) {
  const binary = await assembleSimdKernels()
  await writeFile(new URL('../../src/gpu-runner/merge/cpu/simd-kernels.wasm', import.meta.url), binary)
  console.log(`simd-kernels.wasm: ${binary.byteLength} bytes`)
}
