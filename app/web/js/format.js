// How the dashboard writes numbers, money, durations and times. Times are UTC, as the ledger's days are.

/**
 * US dollars: cents from $1 on; below, up to four decimals and at least two ("$0.96", "$0.039",
 * "$0.0035"), as image prices are fractions of a cent to a few cents.
 */
export function formatUsd(value) {
  const amount = Number(value) || 0;
  if (amount >= 1 || amount === 0) return `$${amount.toFixed(2)}`;
  return `$${amount.toFixed(4).replace(/0{1,2}$/, "")}`;
}

/** A count with thousands separators. */
export function formatCount(value) {
  return Number(value || 0).toLocaleString("en-US");
}

/** A share as a percentage ("12.5%"); "—" for none. */
export function formatPercent(share) {
  if (share === null || share === undefined) return "—";
  return `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)}%`;
}

/** Milliseconds as "850 ms" or "2.4 s". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Unix seconds as "2025-03-01 13:05:09" (UTC). */
export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ");
}

/** Unix seconds as "2025-03-01" (UTC). */
export function formatDate(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

/** How long ago `seconds` (Unix) was, roughly: "just now", "5 min ago", "3 h ago", "2 days ago". */
export function formatAgo(seconds, now = Date.now() / 1000) {
  if (seconds === null || seconds === undefined) return "—";
  const elapsed = Math.max(0, now - seconds);
  if (elapsed < 60) return "just now";
  if (elapsed < 3600) return `${Math.floor(elapsed / 60)} min ago`;
  if (elapsed < 86400) return `${Math.floor(elapsed / 3600)} h ago`;
  const days = Math.floor(elapsed / 86400);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}
