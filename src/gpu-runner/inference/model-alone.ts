import { copyFile, link, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

// ONNX Runtime reads a model's external data (tensors stored in files beside
// the .onnx) from the model's own directory. The artifact cache keeps every
// verified artifact side by side by hash, every tenant's together, so a
// crafted model could name another tenant's artifact as its weights. Each
// load therefore sees the file alone in a fresh directory: a hard link (a
// copy where the link cannot be made), removed once the runtime has read it.
export async function withModelAlone<T>(path: string, run: (alone: string) => Promise<T>): Promise<T> {
  // Next to the cache's own directories where possible, so the link stays on one file system.
  const dir = await mkdtemp(join(dirname(dirname(path)), '.model-alone-')).catch(() => mkdtemp(join(tmpdir(), 'moat-model-alone-')))
  try {
    const alone = join(dir, 'model.onnx')
    await link(path, alone).catch(() => copyFile(path, alone))
    return await run(alone)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
