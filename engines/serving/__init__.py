"""Ray Serve: connecting to the cluster, deploying applications, the replica, the batcher, the client."""
