package gateway

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket per caller.
type rateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// take spends one token of the caller's bucket, or returns a 429 with how long until the
// next token.
func (l *rateLimiter) take(caller string) *Error {
	now := l.now()
	l.mu.Lock()
	b, ok := l.buckets[caller]
	if !ok {
		b = &bucket{limiter: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[caller] = b
	}
	b.lastSeen = now
	l.mu.Unlock()
	if b.limiter.AllowN(now, 1) {
		return nil
	}
	r := b.limiter.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	if wait < time.Second {
		wait = time.Second
	}
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limit_exceeded", RetryAfter: wait,
		Message: "too many requests: this caller may send " + formatRate(float64(l.limit), l.burst) + "; retry after the Retry-After header's seconds"}
}

// sweep forgets callers whose bucket has been full for a while.
func (l *rateLimiter) sweep(idle time.Duration) {
	cutoff := l.now().Add(-idle)
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.buckets {
		if b.lastSeen.Before(cutoff) {
			delete(l.buckets, k)
		}
	}
}

func formatRate(perSecond float64, burst int) string {
	return trimFloat(perSecond) + " requests per second with bursts of " + itoa(burst)
}
