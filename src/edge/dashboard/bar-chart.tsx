export type Point = { label: string; value: number }

const WIDTH = 640
const HEIGHT = 180
const PAD = 24

// An inline SVG bar chart: no script, no external asset. Each bar carries its
// value as a title, and the figure is described for screen readers.
export function BarChart(props: { title: string; points: Point[] }) {
  const max = Math.max(1, ...props.points.map((p) => p.value))
  const slot = (WIDTH - PAD) / Math.max(1, props.points.length)
  const barWidth = Math.max(2, slot * 0.7)
  const plotHeight = HEIGHT - 2 * PAD
  return (
    <svg role="img" aria-label={props.title} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width={WIDTH} height={HEIGHT} class="chart">
      <title>{props.title}</title>
      <text x={PAD} y={14} font-size="12" fill="currentColor">{`max ${max}`}</text>
      <line x1={PAD} y1={HEIGHT - PAD} x2={WIDTH} y2={HEIGHT - PAD} stroke="currentColor" stroke-opacity="0.4" />
      {props.points.map((point, i) => {
        const height = (plotHeight * point.value) / max
        const x = PAD + i * slot + (slot - barWidth) / 2
        return (
          <g>
            <rect x={x} y={HEIGHT - PAD - height} width={barWidth} height={height} fill="#2563eb">
              <title>{`${point.label}: ${point.value}`}</title>
            </rect>
            <text x={x + barWidth / 2} y={HEIGHT - 8} font-size="10" text-anchor="middle" fill="currentColor">{point.label.slice(5)}</text>
          </g>
        )
      })}
    </svg>
  )
}
