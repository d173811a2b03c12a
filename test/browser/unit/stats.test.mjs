// Unit tests of the page's rolling figures (firmware/web/stats.js).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rolling, Rate, percentile } from '../../../firmware/web/stats.js';

test('percentiles by nearest rank, over the newest values only', () => {
  const r = new Rolling(100);
  assert.ok(Number.isNaN(r.percentile(50)));
  for (let i = 1; i <= 200; i++) r.add(i); // keeps 101..200
  assert.equal(r.values.length, 100);
  assert.equal(r.percentile(50), 150);
  assert.equal(r.percentile(99), 199);
  assert.equal(r.percentile(100), 200);
  assert.equal(r.percentile(0), 101);
  // Numeric, not lexicographic, order.
  assert.equal(percentile([9, 10, 100, 2], 50), 9);
});

test('a rate per second from a growing counter', () => {
  const r = new Rate();
  assert.equal(r.tick(0, 1000), 0); // the first sample sets the base
  assert.equal(r.tick(15, 1500), 30);
  assert.equal(r.tick(15, 1500), 30); // no time passed: keeps the last value
  assert.equal(r.tick(45, 2500), 30);
});
