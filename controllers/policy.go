package controllers

import (
	"context"
)

// ReasonNotAllowed is the reason of a job the administrator's job policy refuses: a host path
// or an image that is not allowed.
const ReasonNotAllowed = "NotAllowed"

// refuseByPolicy fails a job whose host paths or image the job policy refuses, before any pod
// of it is created. The admission policy refuses such jobs already; this is the second layer,
// for jobs stored before the policy was installed or tightened, whose running pods are
// stopped. It reports whether the job was refused.
func (r *ImageGenerationJobReconciler) refuseByPolicy(ctx context.Context, s *syncState) (bool, error) {
	errs := r.cfg.Policy.Check(&s.job.Spec)
	if len(errs) == 0 {
		return false, nil
	}
	if err := r.deleteActive(ctx, s, "the job policy refuses the job"); err != nil {
		return true, err
	}
	r.fail(s, ReasonNotAllowed, "the job policy refuses this job: "+errs.ToAggregate().Error())
	r.handleTTL(s)
	return true, nil
}
