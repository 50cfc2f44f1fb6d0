package gpu

import (
	"context"
	"errors"
	"sync"
)

// Combined is the Source of a node with GPUs of more than one vendor: the GPUs of each source
// follow those of the one before, renumbered so that every index on the node is unique.
type Combined struct {
	sources []Source
	infos   []Info
	// toNode maps, per source, a GPU's index in its source to its index on the node.
	toNode []map[int]int
}

var _ Source = (*Combined)(nil)

// Combine joins sources in order.
func Combine(sources ...Source) *Combined {
	c := &Combined{sources: sources, toNode: make([]map[int]int, len(sources))}
	next := 0
	for s, src := range sources {
		c.toNode[s] = map[int]int{}
		for _, info := range src.Devices() {
			c.toNode[s][info.Index] = next
			info.Index = next
			c.infos = append(c.infos, info)
			next++
		}
	}
	return c
}

// Devices lists every source's GPUs, renumbered.
func (c *Combined) Devices() []Info { return append([]Info(nil), c.infos...) }

// Sample samples every source, in the order of Devices.
func (c *Combined) Sample() []Sample {
	var out []Sample
	for s, src := range c.sources {
		for _, sm := range src.Sample() {
			sm.Index = c.toNode[s][sm.Index]
			out = append(out, sm)
		}
	}
	return out
}

// WatchEvents watches every source until ctx ends; events carry node indexes. A source that
// cannot watch does not stop the others; its error is returned when all have ended.
func (c *Combined) WatchEvents(ctx context.Context, handle func(Event)) error {
	var mu sync.Mutex // handle is called from one goroutine at a time, as with one source
	var wg sync.WaitGroup
	errs := make([]error, len(c.sources))
	for s, src := range c.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[s] = src.WatchEvents(ctx, func(ev Event) {
				ev.Index = c.toNode[s][ev.Index]
				mu.Lock()
				defer mu.Unlock()
				handle(ev)
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Simulated says whether any source is simulated.
func (c *Combined) Simulated() bool {
	for _, src := range c.sources {
		if src.Simulated() {
			return true
		}
	}
	return false
}

// Close closes every source.
func (c *Combined) Close() error {
	var errs []error
	for _, src := range c.sources {
		errs = append(errs, src.Close())
	}
	return errors.Join(errs...)
}
