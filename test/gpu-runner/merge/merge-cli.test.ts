import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseSize } from '../../../src/gpu-runner/merge/merge-cli.ts'
import { createProgressBar, formatProgress } from '../../../src/gpu-runner/merge/progress-bar.ts'

const BIN = fileURLToPath(new URL('../../../bin/moat.js', import.meta.url))
const CONFIGS = fileURLToPath(new URL('../../fixtures/merge/configs/', import.meta.url))

async function moat(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args])
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moat-merge-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('moat merge', () => {
  it('prints the plan on --dry-run and writes nothing', async () => {
    const run = await moat(['merge', join(CONFIGS, 'passthrough.yml'), join(dir, 'dry'), '--dry-run'])
    expect(run.code).toBe(0)
    const lines = run.stdout.trim().split('\n')
    expect(lines).toContain('model.layers.3.self_attn.o_proj.weight [16, 16] F16 = passthrough <- ../models/b:model.layers.2.self_attn.o_proj.weight (scale=0.5)')
    expect(lines.at(-1)).toMatch(/^39 tensors, 4 layers, /)
    await expect(readdir(join(dir, 'dry'))).rejects.toThrow()
  })

  it('writes sharded output with an index, the config and config.json', async () => {
    const out = join(dir, 'ties')
    const run = await moat(['merge', join(CONFIGS, 'ties.yml'), out, '--threads', '2', '--out-shard-size', '8K', '--no-progress'])
    expect(run.code, run.stderr).toBe(0)
    const files = (await readdir(out)).sort()
    expect(files).toContain('model.safetensors.index.json')
    expect(files.filter((name) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(name)).length).toBeGreaterThan(1)
    expect(await readFile(join(out, 'mergekit_config.yml'), 'utf8')).toBe(await readFile(join(CONFIGS, 'ties.yml'), 'utf8'))
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).num_hidden_layers).toBe(3)
    expect(run.stderr).toMatch(/merged 30 tensors/)
  })

  it('exits 1 with the key path of a config error, and 2 on bad usage', async () => {
    const bad = join(dir, 'bad.yml')
    await writeFile(bad, 'merge_method: ties\nbase_model: x\nmodels:\n  - model: x\n    parameters: {weight: [a, {}]}\n')
    const run = await moat(['merge', bad, join(dir, 'never')])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^moat merge: models\[0\]\.parameters\.weight/)
    expect((await moat(['merge', bad])).code).toBe(2)
    expect((await moat(['merge', bad, join(dir, 'x'), '--device', 'tpu'])).stderr).toMatch(/--device "tpu": expected cpu or webgpu/)
    expect((await moat(['merge', '--help'])).stdout).toMatch(/--out-shard-size/)
  })
})

describe('helpers', () => {
  it('reads shard sizes as mergekit does', () => {
    expect(parseSize('5B')).toBe(5e9)
    expect(parseSize('500M')).toBe(5e8)
    expect(parseSize('8K')).toBe(8000)
    expect(parseSize('1234')).toBe(1234)
    expect(() => parseSize('lots')).toThrow(/cannot read/)
  })

  it('formats progress with rate and ETA, redrawn in place on a terminal', () => {
    expect(formatProgress({ tensorsDone: 5, tensorsTotal: 10, bytesDone: 1e9, bytesTotal: 2e9 }, 2)).toBe(
      '[############............] 5/10 tensors 1.00/2.00 GB 500 MB/s ETA 0:02',
    )
    const written: string[] = []
    let clock = 0
    const bar = createProgressBar({ isTTY: true, write: (text) => written.push(text) > 0 }, () => clock)
    clock = 1000
    bar.update({ tensorsDone: 1, tensorsTotal: 2, bytesDone: 10, bytesTotal: 20 })
    bar.finish()
    expect(written[0]!.startsWith('\r[')).toBe(true)
    expect(written.at(-1)!.endsWith('\n')).toBe(true)
  })
})
