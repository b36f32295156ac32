import { PERIOD_DAYS } from './period.ts'

export type KeyChoice = { id: string; label: string }

// A GET form, so it works with scripts off. With `keys`, it also picks one
// key (or all of them).
export function PeriodPicker(props: { action: string; days: number; keys?: KeyChoice[]; keyId?: string | undefined }) {
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
      {props.keys ? (
        <>
          <label for="key">Key </label>
          <select id="key" name="key">
            <option value="" selected={!props.keyId}>All keys</option>
            {props.keys.map((key) => (
              <option value={key.id} selected={key.id === props.keyId}>{key.label}</option>
            ))}
          </select>{' '}
        </>
      ) : null}
      <button type="submit">Show</button>
    </form>
  )
}
