import { isAbsolute, resolve } from 'node:path'
import { referencedModels, type MergeConfig } from '../../shared/merge-config.ts'
import { openSafetensorsModel, type SafetensorsModel } from '../tensors/safetensors-model.ts'

// Opens every model a config names. Local references resolve against
// `baseDir` (the config file's directory for the CLI).

export type OpenModels = { models: Map<string, SafetensorsModel>; dirs: Map<string, string>; close(): Promise<void> }

export async function openConfigModels(config: MergeConfig, locate: (ref: string) => string): Promise<OpenModels> {
  const models = new Map<string, SafetensorsModel>()
  const dirs = new Map<string, string>()
  const close = async () => {
    await Promise.all([...models.values()].map((model) => model.close()))
  }
  try {
    for (const ref of referencedModels(config)) {
      const dir = locate(ref)
      dirs.set(ref, dir)
      models.set(ref, await openSafetensorsModel(dir))
    }
  } catch (error) {
    await close()
    throw error
  }
  return { models, dirs, close }
}

export function relativeTo(baseDir: string): (ref: string) => string {
  return (ref) => (isAbsolute(ref) ? ref : resolve(baseDir, ref))
}
