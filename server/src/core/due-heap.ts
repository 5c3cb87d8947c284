/** The MemoryStore's sweep schedule: channels ordered by when the sweep must next visit them. */

export interface DueEntry {
  due: number;
  channel: string;
}

/** A binary min-heap of channels by due time, so a sweep visits only channels with something due. */
export class DueHeap {
  #items: DueEntry[] = [];

  peek(): DueEntry | undefined {
    return this.#items[0];
  }

  push(entry: DueEntry): void {
    const items = this.#items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.due <= entry.due) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): DueEntry | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child =
        right < items.length && items[right]!.due < items[left]!.due
          ? right
          : left;
      if (items[child]!.due >= last.due) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }

  clear(): void {
    this.#items = [];
  }
}
