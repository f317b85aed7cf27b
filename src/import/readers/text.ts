/**
 * The streaming parts every reader is made of: text decoded chunk by chunk, cut into lines, CSV
 * rows or the items of a JSON array, never holding more than one record (memory stays flat
 * whatever the file's size).
 */

/** A record longer than this is refused (and skipped) rather than buffered. */
export const MAX_RECORD_CHARS = 1024 * 1024;

export type Input = AsyncIterable<Buffer | string> | Iterable<Buffer | string>;

async function* decoded(input: Input): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  let first = true;
  for await (const chunk of input) {
    let text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    if (first && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a byte order mark
      first = false;
    }
    if (text) yield text;
  }
  const rest = decoder.decode();
  if (rest) yield rest;
}

export type Line = { line: number; text: string } | { line: number; tooLong: true };

/** The lines of the input, numbered from 1 (a final line without its newline counts). */
export async function* lines(input: Input): AsyncGenerator<Line> {
  let carry = '';
  let skipping = false;
  let number = 0;
  for await (const text of decoded(input)) {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      const piece = carry + text.slice(start, nl);
      carry = '';
      start = nl + 1;
      number += 1;
      if (skipping || piece.length > MAX_RECORD_CHARS) {
        skipping = false;
        yield { line: number, tooLong: true };
      } else yield { line: number, text: piece.endsWith('\r') ? piece.slice(0, -1) : piece };
    }
    if (!skipping) {
      carry += text.slice(start);
      if (carry.length > MAX_RECORD_CHARS) {
        carry = '';
        skipping = true;
      }
    }
  }
  if (skipping) yield { line: number + 1, tooLong: true };
  else if (carry !== '') yield { line: number + 1, text: carry.endsWith('\r') ? carry.slice(0, -1) : carry };
}

export type CsvRow = { line: number; cells: string[] } | { line: number; error: string };

/**
 * RFC 4180 rows: quoted cells may hold commas, doubled quotes and line breaks; a row is numbered
 * by the line it starts on. A state machine, so a chunk may end anywhere.
 */
export async function* csvRows(input: Input): AsyncGenerator<CsvRow> {
  // 'start': at a cell's start; 'plain': in an unquoted cell; 'quoted': inside quotes;
  // 'quote': a quote seen inside quotes (a doubled one, or the closing one); 'closed': after it.
  let state: 'start' | 'plain' | 'quoted' | 'quote' | 'closed' = 'start';
  let cells: string[] = [];
  let cell = '';
  let line = 1;
  let rowLine = 1;
  let size = 0;
  let broken: string | undefined;
  const endRow = (): CsvRow | undefined => {
    cells.push(cell.endsWith('\r') && state === 'plain' ? cell.slice(0, -1) : cell);
    const row: CsvRow | undefined = broken ? { line: rowLine, error: broken } : cells.length === 1 && cells[0] === '' ? undefined : { line: rowLine, cells };
    cells = [];
    cell = '';
    size = 0;
    broken = undefined;
    state = 'start';
    return row;
  };
  for await (const text of decoded(input)) {
    for (const c of text) {
      if (state === 'quote') {
        if (c === '"') {
          cell += '"';
          state = 'quoted';
          continue;
        }
        state = 'closed';
      }
      if (state === 'quoted') {
        if (c === '"') state = 'quote';
        else {
          if (c === '\n') line++;
          if (!broken) cell += c;
        }
      } else if (c === ',') {
        cells.push(cell);
        cell = '';
        state = 'start';
      } else if (c === '\n') {
        const row = endRow();
        if (row) yield row;
        line++;
        rowLine = line;
      } else if (c === '"' && state === 'start') {
        state = 'quoted';
      } else if (state === 'closed') {
        if (c !== '\r') broken ??= 'has text after a closing quote';
      } else {
        state = 'plain';
        if (!broken) cell += c;
      }
      if (++size > MAX_RECORD_CHARS && !broken) {
        broken = 'is too long';
        cell = '';
        cells = [];
      }
    }
  }
  if (state === 'quoted') broken ??= 'has a quote that never closes';
  if (cell !== '' || cells.length > 0 || broken) {
    const row = endRow();
    if (row) yield row;
  }
}

/** CSV rows as objects keyed by the header row's names (an empty cell is no value). */
export async function* csvObjects(input: Input): AsyncGenerator<{ line: number; values?: Record<string, string>; error?: string }> {
  let header: string[] | undefined;
  for await (const row of csvRows(input)) {
    if ('error' in row) {
      yield { line: row.line, error: `row ${row.error}` };
      continue;
    }
    if (!header) {
      header = row.cells.map((name) => name.trim());
      continue;
    }
    if (row.cells.length !== header.length) {
      yield { line: row.line, error: `has ${row.cells.length} cells where the header has ${header.length}` };
      continue;
    }
    const values: Record<string, string> = {};
    header.forEach((name, i) => {
      if (row.cells[i] !== '') values[name] = row.cells[i]!;
    });
    yield { line: row.line, values };
  }
}

export type JsonItem = { index: number; value: unknown } | { index: number; error: string };

/**
 * The items of the array under the top-level key `key` of one JSON object (`{"users": [...]}`),
 * one at a time, numbered from 1; the rest of the document is skimmed, never kept.
 */
export async function* jsonArrayItems(input: Input, key: string): AsyncGenerator<JsonItem> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let stringStart = -1;
  let stringText = '';
  let lastKey: string | undefined;
  let inArray = false;
  let found = false;
  let item = '';
  let itemDepth = 0;
  let index = 0;
  let tooLong = false;
  for await (const text of decoded(input)) {
    let itemStart = inArray && itemDepth > 0 ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') {
          inString = false;
          if (depth === 1 && !inArray) {
            stringText += text.slice(Math.max(stringStart, 0), i);
            lastKey = stringText;
          }
        }
        continue;
      }
      if (c === '"') {
        if (inArray && depth === 2 && itemDepth === 0) {
          index++;
          yield { index, error: 'is not a JSON object' };
        }
        inString = true;
        stringStart = i + 1;
        stringText = '';
        continue;
      }
      if (c === '{' || c === '[') {
        if (inArray && depth === 2 && itemDepth === 0) {
          itemStart = i;
          item = '';
          tooLong = false;
        }
        if (c === '[' && depth === 1 && lastKey === key && !found) {
          inArray = true;
          found = true;
        }
        depth++;
        if (inArray && depth > 2) itemDepth++;
      } else if (c === '}' || c === ']') {
        depth--;
        if (inArray && depth >= 2) {
          itemDepth--;
          if (itemDepth === 0) {
            index++;
            const whole = item + text.slice(itemStart, i + 1);
            item = '';
            itemStart = -1;
            if (tooLong) yield { index, error: 'is too long' };
            else {
              try {
                yield { index, value: JSON.parse(whole) };
              } catch {
                yield { index, error: 'is not valid JSON' };
              }
            }
          }
        } else if (inArray && depth === 1) inArray = false;
      } else if (inArray && depth === 2 && itemDepth === 0 && !/[\s,]/.test(c)) {
        index++;
        yield { index, error: 'is not a JSON object' };
        // skip a scalar item up to the next comma or the end of the array
        while (i + 1 < text.length && !/[,\]]/.test(text[i + 1]!)) i++;
      }
    }
    if (inString && depth === 1 && !inArray) stringText += text.slice(Math.max(stringStart, 0));
    stringStart = 0;
    if (inArray && itemDepth > 0 && itemStart >= 0) {
      item += text.slice(itemStart);
      if (item.length > MAX_RECORD_CHARS) {
        tooLong = true;
        item = '';
      }
    }
  }
  if (!found) yield { index: 0, error: `has no "${key}" array` };
  else if (depth !== 0 || inString) yield { index: index + 1, error: 'ends in the middle of the document' };
}
