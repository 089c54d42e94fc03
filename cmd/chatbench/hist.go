package main

import "math/bits"

// hist is a fixed-size log-linear histogram of durations in microseconds.
// Values below 64 µs have their own bucket; above that every power of two
// is split into 32 buckets, so a reported percentile is within about 3 % of
// the true value. It never allocates after creation and histograms merge by
// adding their counts, so each connection records into its own histogram
// without locks and the run merges them at the end.
//
// The zero value is not usable; call newHist.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64 // µs
	max    uint64 // ns, exact
	min    uint64 // ns, exact
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits                       // buckets per power of two
	histMaxUS   = 1<<31 - 1                              // ~36 minutes; larger values are clamped
	histBuckets = (31-histSubBits-1)*histSub + 2*histSub // index of histMaxUS + 1
)

func newHist() *hist { return &hist{min: ^uint64(0)} }

// histIndex returns the bucket of v microseconds.
func histIndex(v uint64) int {
	if v > histMaxUS {
		v = histMaxUS
	}
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [32, 64)
	return shift*histSub + int(v>>shift)
}

// histLower returns the smallest value (µs) in bucket i and the bucket width.
func histLower(i int) (lo, width uint64) {
	if i < 2*histSub {
		return uint64(i), 1
	}
	shift := i/histSub - 1
	mant := uint64(i - shift*histSub)
	return mant << shift, 1 << shift
}

// record adds one duration given in nanoseconds. Negative durations (clock
// skew between processes cannot happen here, but a foreign sender could
// claim a future time) count as zero.
func (h *hist) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	u := uint64(ns)
	h.counts[histIndex(u/1000)]++
	h.n++
	h.sum += u / 1000
	if u > h.max {
		h.max = u
	}
	if u < h.min {
		h.min = u
	}
}

// merge adds o's counts into h.
func (h *hist) merge(o *hist) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
	h.min = min(h.min, o.min)
}

// quantile returns the q-quantile (0..1) in nanoseconds: the midpoint of
// the bucket holding it, clamped to the exact min and max. It returns 0 for
// an empty histogram.
func (h *hist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	rank = min(rank, h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, w := histLower(i)
			v := lo*1000 + w*1000/2
			v = max(v, h.min)
			v = min(v, h.max)
			return int64(v)
		}
	}
	return int64(h.max)
}

// mean returns the mean in nanoseconds (bucket resolution of 1 µs).
func (h *hist) mean() int64 {
	if h.n == 0 {
		return 0
	}
	return int64(h.sum * 1000 / h.n)
}
