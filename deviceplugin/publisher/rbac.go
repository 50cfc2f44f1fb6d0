package publisher

// These markers list exactly what the node agent does with the API; controller-gen turns them
// into the agent's ClusterRole. Server-side apply that creates an object needs create as well as
// patch.

// +kubebuilder:rbac:groups=sdfleet.io,resources=gpunodes,verbs=create;patch
// +kubebuilder:rbac:groups=sdfleet.io,resources=gpunodes/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;patch
