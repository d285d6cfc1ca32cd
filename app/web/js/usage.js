// The usage charts' data: the period's time buckets, the query for them, and the API's rows turned
// into a table of buckets by series (the model, provider or key each row names).

export const RANGES = {
  "24h": { label: "the last 24 hours", bucket: "hour", count: 24 },
  "7d": { label: "the last 7 days", bucket: "day", count: 7 },
  "30d": { label: "the last 30 days", bucket: "day", count: 30 },
  "90d": { label: "the last 90 days", bucket: "day", count: 90 },
};

/** Series beyond this many (the busiest first) are drawn together as "Other". */
export const MAX_SERIES = 7;
export const OTHER = "\u0000other";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/**
 * The time buckets of `rangeId` up to `now`, oldest first, each {key, label, long}: `key` as the API
 * names it ("2025-03-01" or "2025-03-01T13:00:00Z"), `label` short for the axis, `long` for tables.
 * Also `start`, the period's first instant as the API's `start` parameter.
 */
export function periodOf(rangeId, now = new Date()) {
  const { bucket, count } = RANGES[rangeId];
  const step = bucket === "hour" ? HOUR_MS : DAY_MS;
  const last = Math.floor(now.getTime() / step) * step;
  const buckets = [];
  for (let index = count - 1; index >= 0; index -= 1) {
    const iso = new Date(last - index * step).toISOString();
    if (bucket === "hour") {
      buckets.push({ key: `${iso.slice(0, 13)}:00:00Z`, label: iso.slice(11, 16), long: `${iso.slice(0, 10)} ${iso.slice(11, 16)}` });
    } else {
      const day = iso.slice(0, 10);
      buckets.push({ key: day, label: `${MONTHS[Number(day.slice(5, 7)) - 1]} ${Number(day.slice(8, 10))}`, long: day });
    }
  }
  const first = last - (count - 1) * step;
  const start = bucket === "hour" ? String(first / 1000) : new Date(first).toISOString().slice(0, 10);
  return { bucket, buckets, start };
}

/** The path of the usage query for a period and a dimension (model, provider or key). */
export function usagePath(period, dimension) {
  const query = new URLSearchParams({ group_by: `${period.bucket},${dimension}`, start: period.start });
  return `admin/usage?${query}`;
}

/**
 * The API's rows as {series, cell(bucketKey, seriesId), totals}. `series` lists the busiest first
 * (by requests, then spend), each {id, label, index}; past MAX_SERIES the rest are one "Other" series
 * (index "other"). `nameOf(value)` labels a group value (a key id as the key's name...).
 */
export function tabulate(rows, period, dimension, nameOf) {
  const byGroup = new Map();
  const totals = { requests: 0, errors: 0, images: 0, cost_usd: 0 };
  for (const row of rows) {
    const id = row[dimension] ?? "";
    const group = byGroup.get(id) ?? { requests: 0, cost_usd: 0 };
    group.requests += row.requests;
    group.cost_usd += row.cost_usd;
    byGroup.set(id, group);
    for (const field of Object.keys(totals)) totals[field] += row[field];
  }
  const ranked = [...byGroup].sort(([, a], [, b]) => b.requests - a.requests || b.cost_usd - a.cost_usd);
  const shown = ranked.length > MAX_SERIES ? ranked.slice(0, MAX_SERIES - 1) : ranked;
  const series = shown.map(([id], index) => ({ id, label: nameOf(id), index: String(index) }));
  if (shown.length < ranked.length) series.push({ id: OTHER, label: `Other (${ranked.length - shown.length})`, index: "other" });
  const seriesOf = new Map(shown.map(([id]) => [id, id]));

  const cells = new Map();
  for (const row of rows) {
    const bucketKey = row[period.bucket];
    const id = seriesOf.get(row[dimension] ?? "") ?? OTHER;
    const cell = cells.get(`${bucketKey}\n${id}`) ?? { requests: 0, cost_usd: 0 };
    cell.requests += row.requests;
    cell.cost_usd += row.cost_usd;
    cells.set(`${bucketKey}\n${id}`, cell);
  }
  const cell = (bucketKey, id) => cells.get(`${bucketKey}\n${id}`) ?? { requests: 0, cost_usd: 0 };
  return { series, cell, totals };
}
