/**
 * @module The per-request cost of every subject as a plain SVG bar chart (log scale, text labels, no
 * dependencies), written beside BENCHMARKS.md. `npm run bench -- --chart-only` redraws it from the figures
 * already in BENCHMARKS.md, without measuring again.
 */

import type { SubjectFigures } from './paired.ts'

/** One subject as the chart shows it. */
export interface ChartRow {
  label: string
  kind: 'baseline' | 'edge-session' | 'peer'
  read: { us: number; ratio: number }
  write: { us: number; ratio: number }
}

/** What every bar is, for the chart's second line. */
export const chartCaption = 'medians of paired rounds (the table below has the ranges); shorter is cheaper'

/** Where BENCHMARKS.md links its chart, relative to BENCHMARKS.md. */
export const CHART_PATH = 'docs/benchmarks.svg'

export function chartRows(rows: readonly SubjectFigures[]): ChartRow[] {
  return rows.map((row) => ({
    label: row.label,
    kind: row.library === 'none' ? 'baseline' : row.library === 'edge-session' ? 'edge-session' : 'peer',
    read: { us: row.read.us, ratio: row.read.ratio },
    write: { us: row.write.us, ratio: row.write.ratio },
  }))
}

/**
 * The rows of the "Cost per request" table of a BENCHMARKS.md that `npm run bench` wrote: subject, store,
 * read µs, read ratio (range), write µs, write ratio (range), cookie bytes.
 */
export function rowsFromMarkdown(markdown: string): ChartRow[] {
  const section = markdown.split(/^## /m).find((part) => part.startsWith('Cost per request'))
  if (!section) throw new Error('BENCHMARKS.md has no "Cost per request" section')
  const rows: ChartRow[] = []
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim())
    // A table line: '', seven cells, ''. Skip the header and the rule.
    if (cells.length !== 9 || cells[1] === 'Subject' || /^-+$/.test(cells[1] ?? '')) continue
    const [, label = '', , readUs, readRatio, writeUs, writeRatio] = cells
    const number = (cell: string | undefined) => {
      const value = Number.parseFloat(cell ?? '')
      if (!Number.isFinite(value))
        throw new Error(`BENCHMARKS.md: "${cell}" in the row of ${label} is no number`)
      return value
    }
    rows.push({
      label,
      kind: label.startsWith('no session')
        ? 'baseline'
        : label.startsWith('edge-session')
          ? 'edge-session'
          : 'peer',
      read: { us: number(readUs), ratio: number(readRatio) },
      write: { us: number(writeUs), ratio: number(writeRatio) },
    })
  }
  if (rows.length === 0) throw new Error('BENCHMARKS.md: the "Cost per request" table has no rows')
  return rows
}

const escapeXml = (text: string) =>
  text.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch] ?? ch)

const us = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(1))

/** Colours: edge-session in blue, the peers in grey, the baseline in green; writes a lighter shade of each. */
const COLOURS = {
  baseline: { read: '#2e7d32', write: '#81c784' },
  'edge-session': { read: '#1565c0', write: '#64b5f6' },
  peer: { read: '#616161', write: '#bdbdbd' },
} as const

/**
 * A horizontal bar chart of µs per request, read and write side by side for each subject, on a log scale
 * (the subjects span two to three orders of magnitude), each bar labelled with its µs and its ratio to the
 * baseline.
 */
export function perRequestSvg(rows: readonly ChartRow[], caption: string): string {
  const labelWidth = 330
  const barWidth = 430
  const valueWidth = 150
  const width = labelWidth + barWidth + valueWidth
  const top = 76
  const barHeight = 12
  const group = 2 * barHeight + 16
  const height = top + rows.length * group + 36
  const values = rows.flatMap((row) => [row.read.us, row.write.us])
  const low = 10 ** Math.floor(Math.log10(Math.min(...values)))
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values)))
  const x = (value: number) => labelWidth + (barWidth * Math.log10(value / low)) / Math.log10(high / low)

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="13" role="img">`,
    `<title>Cost per request of each subject, read and write, in µs on a log scale, with the ratio to no session</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="600" fill="#212121">Cost per request: µs on a log scale, and the ratio to no session</text>`,
    `<text x="16" y="44" fill="#616161">${escapeXml(caption)}</text>`,
    `<text x="16" y="64" fill="#616161">Dark bars read (GET /count), light bars write (POST /count); <tspan fill="${COLOURS['edge-session'].read}" font-weight="600">blue: edge-session</tspan>, grey: the other libraries, <tspan fill="${COLOURS.baseline.read}">green: no session</tspan>.</text>`,
  ]
  // Grid lines at each power of ten.
  for (let tick = low; tick <= high * 1.0001; tick *= 10) {
    const tx = x(tick).toFixed(1)
    const bottom = top + rows.length * group
    parts.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${bottom}" stroke="#e0e0e0"/>`,
      `<text x="${tx}" y="${bottom + 16}" text-anchor="middle" fill="#616161">${tick >= 1000 ? `${tick / 1000} ms` : `${tick} µs`}</text>`,
    )
  }
  rows.forEach((row, i) => {
    const y = top + i * group
    const colours = COLOURS[row.kind]
    const weight = row.kind === 'edge-session' ? ' font-weight="600"' : ''
    parts.push(
      `<text x="${labelWidth - 10}" y="${y + barHeight + 5}" text-anchor="end" fill="#212121"${weight}>${escapeXml(row.label)}</text>`,
    )
    for (const [j, kind] of (['read', 'write'] as const).entries()) {
      const figure = row[kind]
      const by = y + j * (barHeight + 2)
      const end = x(Math.max(figure.us, low))
      parts.push(
        `<rect x="${labelWidth}" y="${by}" width="${Math.max(1, end - labelWidth).toFixed(1)}" height="${barHeight}" fill="${colours[kind]}"><title>${escapeXml(`${row.label}, ${kind}: ${us(figure.us)} µs, ${figure.ratio.toFixed(2)}x`)}</title></rect>`,
        `<text x="${(end + 6).toFixed(1)}" y="${by + barHeight - 2}" font-size="11" fill="#424242">${us(figure.us)} µs · ${figure.ratio.toFixed(2)}x</text>`,
      )
    }
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
