// Package connlimit counts the open connections of a listener a stranger
// can reach (the embedded broker, the HTTP API), in total and per source,
// so that each can close at once a connection over its caps.
package connlimit

import (
	"math"
	"sync"
	"time"
)

// Cap is v, def when v is 0, or no cap when v is negative.
func Cap(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return math.MaxInt32
	}
	return v
}

// Counter counts connections by source. Its zero value has no caps set:
// set MaxTotal and MaxPerSource (Cap) before the first Admit.
type Counter struct {
	MaxTotal, MaxPerSource int
	// Warn, if set, is told of refusals at most every 10 s: the last
	// refused source, how many were refused since the last call, that
	// source's open connections and all open connections.
	Warn func(src string, refused, fromSource, open int)

	mu      sync.Mutex
	total   int
	per     map[string]int
	refused int
	warned  time.Time
}

// Admit counts a new connection from src, or reports false when it is
// over a cap (and is not counted).
func (c *Counter) Admit(src string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.per == nil {
		c.per = map[string]int{}
	}
	if c.total < c.MaxTotal && c.per[src] < c.MaxPerSource {
		c.total++
		c.per[src]++
		return true
	}
	c.refused++
	if now := time.Now(); now.Sub(c.warned) >= 10*time.Second && c.Warn != nil {
		c.Warn(src, c.refused, c.per[src], c.total)
		c.warned, c.refused = now, 0
	}
	return false
}

// Release uncounts a connection Admit counted.
func (c *Counter) Release(src string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.per[src]--; c.per[src] <= 0 {
		delete(c.per, src)
	}
}

// Open is the number of connections counted now.
func (c *Counter) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
