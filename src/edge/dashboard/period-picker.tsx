import { PERIOD_DAYS } from './period.ts'

// A GET form, so it works with scripts off.
export function PeriodPicker(props: { action: string; days: number }) {
  return (
    <form method="get" action={props.action}>
      <label for="days">Period </label>
      <select id="days" name="days">
        {PERIOD_DAYS.map((days) => (
          <option value={String(days)} selected={days === props.days}>
            {days === 1 ? 'Today' : `Last ${days} days`}
          </option>
        ))}
      </select>{' '}
      <button type="submit">Show</button>
    </form>
  )
}
