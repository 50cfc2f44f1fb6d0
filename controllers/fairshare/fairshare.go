package fairshare

// Demand is what one job wants: the slots it would hold if every image that needs a GPU had
// one (its active pods plus its images waiting, capped by its parallelism).
type Demand struct {
	Namespace string
	Job       string
	Slots     int
}

// Share is a job's fair number of slots.
type Share struct {
	Namespace string
	Job       string
	Slots     int
}

// Shares divides capacity slots between the demands: max-min fair between namespaces, then
// between the jobs of each namespace. The slots left over from an equal division go one each
// to the namespaces, then jobs, in the order of demands (a namespace by its first demand):
// callers list the oldest jobs first, so that when there are more jobs than slots they start
// in the order they came. The result has one Share per demand, in the order of demands. A
// capacity of 0 or less gives every job 0.
func Shares(capacity int, demands []Demand) []Share {
	out := make([]Share, len(demands))
	for i, d := range demands {
		out[i] = Share{Namespace: d.Namespace, Job: d.Job}
	}
	if capacity <= 0 || len(demands) == 0 {
		return out
	}
	byNamespace := map[string][]int{}
	var namespaces []string
	for i, d := range demands {
		if _, ok := byNamespace[d.Namespace]; !ok {
			namespaces = append(namespaces, d.Namespace)
		}
		byNamespace[d.Namespace] = append(byNamespace[d.Namespace], i)
	}
	nsDemand := make([]int, len(namespaces))
	for k, ns := range namespaces {
		for _, i := range byNamespace[ns] {
			nsDemand[k] += max(demands[i].Slots, 0)
		}
	}
	nsShare := maxMin(capacity, nsDemand)
	for k, ns := range namespaces {
		jobs := byNamespace[ns]
		want := make([]int, len(jobs))
		for j, i := range jobs {
			want[j] = max(demands[i].Slots, 0)
		}
		for j, got := range maxMin(nsShare[k], want) {
			out[jobs[j]].Slots = got
		}
	}
	return out
}

// maxMin divides capacity between demands, equally but never more than a demand, in rounds
// until the capacity or the demands run out; a remainder smaller than the number of unserved
// demands goes one each to the first of them.
func maxMin(capacity int, demands []int) []int {
	alloc := make([]int, len(demands))
	open := make([]int, 0, len(demands))
	for i, d := range demands {
		if d > 0 {
			open = append(open, i)
		}
	}
	for capacity > 0 && len(open) > 0 {
		each := capacity / len(open)
		if each == 0 {
			for _, i := range open[:capacity] {
				alloc[i]++
			}
			break
		}
		next := open[:0]
		for _, i := range open {
			give := min(each, demands[i]-alloc[i])
			alloc[i] += give
			capacity -= give
			if alloc[i] < demands[i] {
				next = append(next, i)
			}
		}
		open = next
	}
	return alloc
}
