import { readFileSync } from 'node:fs'

// A CPU profile of workerd taken through its V8 inspector (Miniflare's
// `inspectorPort`) while `during` runs, summed per source module of the
// bundle: where the isolate's time goes, by file. Benchmarks print it when
// asked (BENCH_PROFILE=1); it measures, it decides nothing.

type CallFrame = { functionName: string; url: string; lineNumber: number }
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] }
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

export type ModuleTime = { module: string; selfShare: number; totalShare: number }
export type CpuProfileSummary = { sampledMs: number; idleShare: number; modules: ModuleTime[]; functions: { name: string; selfShare: number }[] }

async function inspectorTarget(port: number): Promise<string> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { webSocketDebuggerUrl: string; title?: string }[]
  const target = targets.find((t) => !t.title?.startsWith('miniflare:') && !t.title?.startsWith('core:')) ?? targets[0]
  if (!target) throw new Error(`no inspector target on port ${port}`)
  return target.webSocketDebuggerUrl
}

type Inspector = { send: (method: string, params?: object) => Promise<unknown>; close: () => void }

function connect(url: string): Promise<Inspector> {
  const socket = new WebSocket(url)
  const pending = new Map<number, (result: unknown) => void>()
  let next = 1
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } }
    if (message.id === undefined) return
    pending.get(message.id)?.(message.error ? new Error(message.error.message) : message.result)
    pending.delete(message.id)
  })
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = next++
      pending.set(id, (result) => (result instanceof Error ? reject(result) : resolve(result)))
      socket.send(JSON.stringify({ id, method, params }))
    })
  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve({ send, close: () => socket.close() }), { once: true })
    socket.addEventListener('error', () => reject(new Error(`cannot reach the inspector at ${url}`)), { once: true })
  })
}

// The bundle's module of each line: esbuild writes `// src/…/file.ts` before
// each module it inlines.
function moduleLines(bundlePath: string): (line: number) => string {
  const starts: { line: number; module: string }[] = []
  readFileSync(bundlePath, 'utf8')
    .split('\n')
    .forEach((text, line) => {
      const match = /^\/\/ ((?:src|node_modules)\/\S+)$/.exec(text) ?? /^\/\/ (\S+\.(?:m?js|ts))$/.exec(text)
      if (match) starts.push({ line, module: match[1]!.replace(/^node_modules\/(?:\.pnpm\/)?((?:@[^/]+\/)?[^/]+).*/, 'npm:$1') })
    })
  return (line) => {
    let low = 0
    let high = starts.length - 1
    let found = '(bundle prelude)'
    while (low <= high) {
      const middle = (low + high) >> 1
      if (starts[middle]!.line <= line) {
        found = starts[middle]!.module
        low = middle + 1
      } else high = middle - 1
    }
    return found
  }
}

export async function profileWorkerd(inspectorPort: number, bundlePath: string, during: () => Promise<void>): Promise<CpuProfileSummary> {
  const { send, close } = await connect(await inspectorTarget(inspectorPort))
  await send('Profiler.enable')
  await send('Profiler.setSamplingInterval', { interval: 200 })
  await send('Profiler.start')
  await during()
  const { profile } = (await send('Profiler.stop')) as { profile: Profile }
  close()
  const moduleOf = moduleLines(bundlePath)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const where = (node: ProfileNode) => {
    const { url, functionName, lineNumber } = node.callFrame
    if (!url) return functionName ? `(${functionName})` : '(native)'
    return url.endsWith('index.js') ? moduleOf(lineNumber) : url
  }
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  const functions = new Map<string, number>()
  let all = 0
  let idle = 0
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000
    const leaf = byId.get(id)!
    all += ms
    if (leaf.callFrame.functionName === '(idle)') {
      idle += ms
      return
    }
    const leafModule = where(leaf)
    self.set(leafModule, (self.get(leafModule) ?? 0) + ms)
    const name = `${leaf.callFrame.functionName || '(anonymous)'} ${leafModule}`
    functions.set(name, (functions.get(name) ?? 0) + ms)
    const seen = new Set<string>()
    for (let node: ProfileNode | undefined = leaf; node; node = byId.get(parent.get(node.id) ?? -1)) seen.add(where(node))
    for (const module of seen) total.set(module, (total.get(module) ?? 0) + ms)
  })
  const busy = all - idle || 1
  return {
    sampledMs: all,
    idleShare: idle / (all || 1),
    modules: [...total.keys()].map((module) => ({ module, selfShare: (self.get(module) ?? 0) / busy, totalShare: total.get(module)! / busy })).sort((a, b) => b.totalShare - a.totalShare),
    functions: [...functions].map(([name, ms]) => ({ name, selfShare: ms / busy })).sort((a, b) => b.selfShare - a.selfShare),
  }
}

export function printProfile(summary: CpuProfileSummary, top = 25): void {
  console.log(`  workerd CPU profile: ${summary.sampledMs.toFixed(0)} ms sampled, ${(summary.idleShare * 100).toFixed(0)} % idle; of the busy time, by module (total = on the stack, self = at the top):`)
  for (const m of summary.modules.slice(0, top)) console.log(`    ${(m.totalShare * 100).toFixed(1).padStart(5)} % total ${(m.selfShare * 100).toFixed(1).padStart(5)} % self  ${m.module}`)
  console.log('  by function (self):')
  for (const f of summary.functions.slice(0, top)) console.log(`    ${(f.selfShare * 100).toFixed(1).padStart(5)} %  ${f.name}`)
}
