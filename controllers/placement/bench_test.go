package placement

import (
	"fmt"
	"testing"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

// benchSnapshot is a cluster of n GPUs on 8-GPU nodes with varied loads, temperatures and
// slots, and r reservations spread over them.
func benchSnapshot(n, r int) Snapshot {
	gpus := make([]GPU, n)
	for i := range gpus {
		gpus[i] = GPU{
			Node:               fmt.Sprintf("node-%03d", i/8),
			Index:              int32(i % 8),
			UUID:               fmt.Sprintf("GPU-%04d", i),
			MemoryTotalBytes:   80 * gib,
			MemoryUsedBytes:    int64(i*7919%61) * gib,
			TemperatureCelsius: int32(60 + i*31%35),
			Healthy:            i%97 != 0,
			Heartbeat:          now,
			Slots:              1000,
			SlotsInUse:         int32(i % 3),
		}
	}
	res := make([]Reservation, r)
	for i := range res {
		res[i] = Reservation{GPU: gpus[i*13%n].UUID, Bytes: 3 * gib}
	}
	return Snapshot{GPUs: gpus, Reservations: res, Now: now}
}

// BenchmarkPlace measures decisions over 1000 GPUs with 500 reservations; ns/op divided by
// the images per call is the cost of one decision. The decisions are passed back to PlaceInto,
// as a controller re-deciding in a loop would.
func BenchmarkPlace(b *testing.B) {
	for _, tc := range []struct {
		name   string
		images int
		policy string
		speeds bool
	}{
		{"LeastLoaded/1image", 1, "LeastLoaded", false},
		{"LeastLoaded/16images", 16, "LeastLoaded", false},
		{"LeastLoadedSpeed/1image", 1, "LeastLoaded", true},
		{"RoundRobin/1image", 1, "RoundRobin", false},
		{"Pack/1image", 1, "Pack", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			snap := benchSnapshot(1000, 500)
			if tc.speeds {
				for i := range snap.GPUs {
					snap.GPUs[i].ImagesPerSecond = 0.5 + float64(i%4)
				}
			}
			e := New(Config{})
			req := Request{Images: tc.images, MemoryPerImage: 3 * gib}
			req.Policy = sdfleetv1alpha1.PlacementPolicy(tc.policy)
			var dst []Decision
			var err error
			b.ReportAllocs()
			for b.Loop() {
				dst, err = e.PlaceInto(dst, snap, req)
			}
			if err != nil || dst[len(dst)-1].Outcome != OutcomeGPU {
				b.Fatalf("last decision %+v, err %v; want a GPU", dst[len(dst)-1], err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.images), "ns/image")
		})
	}
}
