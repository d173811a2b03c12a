// Rolling figures for window.callboxStats: fps and kbps over the last
// second, latency percentiles over the last few hundred frames.

// Rolling keeps the newest `size` numbers.
export class Rolling {
  constructor(size) {
    this.size = size;
    this.values = [];
  }

  add(v) {
    this.values.push(v);
    if (this.values.length > this.size) this.values.splice(0, this.values.length - this.size);
  }

  // percentile p in [0,100] by nearest rank, or NaN when empty.
  percentile(p) {
    return percentile(this.values, p);
  }
}

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * s.length) - 1;
  return s[Math.min(Math.max(rank, 0), s.length - 1)];
}

// Rate turns a growing counter into a per-second rate, sampled by tick().
export class Rate {
  constructor() {
    this.last = NaN;
    this.lastT = 0;
    this.value = 0;
  }

  tick(counter, t) {
    if (!Number.isNaN(this.last) && t > this.lastT) {
      this.value = ((counter - this.last) * 1000) / (t - this.lastT);
    }
    this.last = counter;
    this.lastT = t;
    return this.value;
  }
}
