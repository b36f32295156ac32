// Run by webgpu-backend.test.ts in a child process whose environment points
// Dawn at SwiftShader's Vulkan: prints the largest difference between the
// WebGPU backend's and the reference backend's outputs on real digits.
import { chooseBackend } from '../../../src/gpu-runner/inference/inference-backend.ts'
import { loadDigits, MODEL_PATH } from './mnist-digits.ts'

const rows = loadDigits().pixels.slice(0, 32)
const input = new Float32Array(rows.length * 784)
rows.forEach((row, i) => input.set(row, i * 784))
const reference = await (await chooseBackend('node')).load(MODEL_PATH)
const webgpu = await chooseBackend('webgpu')
const model = await webgpu.load(MODEL_PATH)
const [a, b] = [await reference.run('pixels', input, [32, 784]), await model.run('pixels', input, [32, 784])]
let maxDiff = 0
for (let i = 0; i < a.probabilities!.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.probabilities!.data[i]! - b.probabilities!.data[i]!))
process.stdout.write(`${JSON.stringify({ backend: webgpu.name, dims: b.probabilities!.dims, maxDiff })}\n`)
process.exit(0)
