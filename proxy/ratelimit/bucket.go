// Package ratelimit is Envoy's local rate limit: a token bucket shared by
// every request (or connection) that reaches one configuration, the HTTP
// filter envoy.filters.http.local_ratelimit and the network filter
// envoy.filters.network.local_ratelimit. It never sees Envoy protos: the
// converter in proxy/snapshot builds its Config values.
package ratelimit

import (
	"fmt"
	"sync/atomic"
	"time"
)

// MinFillInterval is the shortest fill interval Envoy's local rate limit
// accepts.
const MinFillInterval = 50 * time.Millisecond

// Bucket is a token bucket that starts full and gets TokensPerFill tokens
// back at the end of every FillInterval, never holding more than MaxTokens
// (Envoy's timer-filled bucket, with the fills counted lazily from the
// clock instead of by a timer). Take is lock-free and does not allocate.
type Bucket struct {
	max, perFill uint32
	interval     time.Duration
	start        time.Time
	// state packs the tokens left (high 32 bits) and the index of the fill
	// interval they were counted at (low 32 bits), so both change in one
	// compare-and-swap.
	state atomic.Uint64
}

// NewBucket returns a full bucket. maxTokens and tokensPerFill must be
// positive and fillInterval at least MinFillInterval (Config.Validate
// checks this); tokensPerFill 0 is taken as 1, Envoy's default.
func NewBucket(maxTokens, tokensPerFill uint32, fillInterval time.Duration) *Bucket {
	if tokensPerFill == 0 {
		tokensPerFill = 1
	}
	if fillInterval <= 0 {
		fillInterval = MinFillInterval
	}
	b := &Bucket{max: maxTokens, perFill: tokensPerFill, interval: fillInterval, start: time.Now()}
	b.state.Store(pack(maxTokens, 0))
	return b
}

func pack(tokens, fill uint32) uint64 { return uint64(tokens)<<32 | uint64(fill) }

func unpack(s uint64) (tokens, fill uint32) { return uint32(s >> 32), uint32(s) }

// fillIndex is the number of whole fill intervals since the bucket was made
// (modulo 2^32: only differences are used).
func (b *Bucket) fillIndex() uint32 { return uint32(time.Since(b.start) / b.interval) }

// refill returns the tokens in state s at fill index now.
func (b *Bucket) refill(s uint64, now uint32) (tokens, fill uint32) {
	tokens, fill = unpack(s)
	d := int32(now - fill)
	if d <= 0 {
		// Another caller already counted a later fill: keep its count.
		return tokens, fill
	}
	t := uint64(tokens) + uint64(d)*uint64(b.perFill)
	if t > uint64(b.max) {
		t = uint64(b.max)
	}
	return uint32(t), now
}

// Take consumes one token. It reports whether there was one and how many
// are left.
func (b *Bucket) Take() (ok bool, remaining uint32) {
	now := b.fillIndex()
	for {
		s := b.state.Load()
		tokens, fill := b.refill(s, now)
		if tokens == 0 {
			if n := pack(0, fill); n != s {
				b.state.CompareAndSwap(s, n)
			}
			return false, 0
		}
		if b.state.CompareAndSwap(s, pack(tokens-1, fill)) {
			return true, tokens - 1
		}
	}
}

// Remaining is the number of tokens in the bucket now.
func (b *Bucket) Remaining() uint32 {
	t, _ := b.refill(b.state.Load(), b.fillIndex())
	return t
}

// MaxTokens is the bucket's capacity.
func (b *Bucket) MaxTokens() uint32 { return b.max }

// ResetIn is the time until the next fill.
func (b *Bucket) ResetIn() time.Duration {
	return b.interval - time.Since(b.start)%b.interval
}

// String describes the bucket for logs and config dumps.
func (b *Bucket) String() string {
	return fmt.Sprintf("%d tokens, %d per %s", b.max, b.perFill, b.interval)
}
