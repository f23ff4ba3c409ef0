// Cluster: coordinator and worker runtime.
