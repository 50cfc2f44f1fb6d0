package gateway

// The gateway's own API access; `make manifests` turns these markers into
// config/rbac/gateway/role.yaml, which the chart's gateway ClusterRole renders. Callers' rights
// are never the gateway's: each action is checked against the caller with a
// SubjectAccessReview before the gateway acts.
//
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=sdfleet.io,resources=imagegenerationjobs,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=sdfleet.io,resources=gpunodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get
