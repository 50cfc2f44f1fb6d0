// Package fairshare divides the fleet's GPU slots between the jobs that want them: equally
// between namespaces first, then equally between the jobs of each namespace, none getting more
// than it asks for (max-min fairness, as Kubernetes' API Priority and Fairness divides
// concurrency between flows). What a namespace or job leaves unused goes to the others, so the
// fleet stays busy when one job is alone, and a small job submitted behind a huge one gets its
// share as soon as slots free up: the huge job places no new image while it holds more than
// its share. Nothing is preempted; running images finish where they are.
//
// The controller and hack/placement-sim both call Shares before placing a job's images.
package fairshare
