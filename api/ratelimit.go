package api

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per credential: each holds up to burst
// tokens and refills at rate per second. A nil limiter allows everything.
type rateLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	if rate < 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// take spends one token of key and returns 0, or how long to wait when the
// bucket is empty.
func (l *rateLimiter) take(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget full buckets now and then so that memory follows the number
	// of active credentials, not of all credentials ever seen.
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if b.refilled(now, l.rate, l.burst) >= l.burst {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens, b.at = b.refilled(now, l.rate, l.burst), now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

func (b *bucket) refilled(now time.Time, rate, burst float64) float64 {
	t := b.tokens + now.Sub(b.at).Seconds()*rate
	if t > burst {
		t = burst
	}
	return t
}
